# The two commands a newcomer needs: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/opsconsole

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	@echo "== pytest, console database: SQLite =="
	env -u DATABASE_URL $(VENV)/bin/pytest -q
	@echo "== pytest, console database: PostgreSQL =="
	DATABASE_URL=$(PG_TEST_URL) $(VENV)/bin/pytest -q

lint:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles

bench: setup
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) bench/jobs_history.py
	$(PY) bench/operators_load.py
	$(PY) bench/cache_invalidate.py
	$(PY) bench/cache_cluster.py
	$(PY) bench/index_advisor.py
	$(PY) bench/partition_migrate.py
	$(PY) bench/partition_under_load.py

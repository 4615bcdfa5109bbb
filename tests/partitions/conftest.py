"""Fixtures for partition migrations: payments-shaped tables in a fresh schema of
the test warehouse database, a writer thread, checksums, and the BigQuery emulator."""

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from jobs.models import Run
from jobs.runner import RunContext
from partitions import execution, faults
from partitions.models import Migration

START = datetime(2024, 1, 1, tzinfo=UTC)


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC")


def create_payments(
    url: str,
    schema: str,
    table: str = "payments",
    rows: int = 3000,
    pk: bool = True,
    null_keys: bool = False,
):
    """A payments-shaped table: rows spread over 2024 with rows exactly on month
    boundaries (and, with `null_keys`, 1 in 97 without a key), a customers table it
    references, and a view."""
    t = sql.Identifier(schema, table)
    with connect(url) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, name text NOT NULL)").format(
                sql.Identifier(schema, "customers")
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT g, 'c' || g FROM generate_series(1, 50) g").format(
                sql.Identifier(schema, "customers")
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {t} (id bigserial {pk}, customer_id bigint REFERENCES {c} (id),"
                " amount_cents bigint NOT NULL, currency char(3) NOT NULL, status text NOT NULL,"
                " description text, created_at timestamptz, updated_at timestamptz NOT NULL)"
            ).format(
                t=t,
                pk=sql.SQL("PRIMARY KEY" if pk else ""),
                c=sql.Identifier(schema, "customers"),
            )
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} (customer_id, amount_cents, currency, status, description,"
                " created_at, updated_at)"
                " SELECT 1 + g % 50, g * 7, 'EUR', (ARRAY['COMPLETED','PENDING'])[1 + g % 2],"
                " CASE WHEN g % 10 = 0 THEN NULL ELSE 'order ' || g END,"
                " CASE WHEN {nulls} AND g % 97 = 0 THEN NULL"
                "      WHEN g % 89 = 0 THEN date_trunc('month', {start}::timestamptz"
                "           + make_interval(days => g % 360))"
                "      ELSE {start}::timestamptz + make_interval(mins => g * 170) END,"
                " {start}::timestamptz"
                " FROM generate_series(1, {rows}) g"
            ).format(
                t=t, start=sql.Literal(START), rows=sql.Literal(rows), nulls=sql.Literal(null_keys)
            ),
        )
        conn.execute(
            sql.SQL(
                "CREATE VIEW {v} AS SELECT status, count(*) AS n, sum(amount_cents) AS total"
                " FROM {t} GROUP BY status"
            ).format(v=sql.Identifier(schema, f"{table}_by_status"), t=t)
        )
        daily = sql.Identifier(schema, f"{table}_daily")
        conn.execute(
            sql.SQL(
                "CREATE MATERIALIZED VIEW {m} AS SELECT date_trunc('day', created_at) AS day,"
                " count(*) AS n FROM {t} GROUP BY 1"
            ).format(m=daily, t=t)
        )
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (day)").format(daily))
        conn.execute(sql.SQL("ANALYZE {}").format(t))


def checksum(url: str, schema: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of the whole row set."""
    with connect(url) as conn:
        return conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text FROM {} t"
            ).format(sql.Identifier(schema, table))
        ).fetchone()


def relkind(url: str, schema: str, table: str) -> str | None:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            [schema, table],
        ).fetchone()
    return row[0] if row else None


def tables_in(url: str, schema: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            [schema],
        )
        return {r[0] for r in rows}


# The operator's choice for the NULL keys of the `payments` fixture, as typed.
ACCEPT_NULL_KEYS = {"null_keys": "lose_uniqueness", "consent": "lose uniqueness"}


class Writer(threading.Thread):
    """Inserts, updates and deletes rows (some moving between months, some to NULL
    keys) until stopped; counts what it did."""

    def __init__(self, url: str, schema: str, table: str):
        super().__init__(daemon=True)
        self.url, self.schema, self.table = url, schema, table
        self.stop = threading.Event()
        self.done = 0
        self.error: Exception | None = None

    def run(self) -> None:
        t = sql.Identifier(self.schema, self.table)
        statements = [
            sql.SQL(
                "INSERT INTO {} (customer_id, amount_cents, currency, status, created_at,"
                " updated_at)"
                " VALUES (1 + %(i)s %% 50, %(i)s, 'USD', 'NEW', %(ts)s, now())"
            ).format(t),
            sql.SQL(
                "UPDATE {} SET amount_cents = amount_cents + 1, updated_at = now()"
                " WHERE ctid = (SELECT ctid FROM {} WHERE created_at IS NOT NULL"
                " ORDER BY random() LIMIT 1)"
            ).format(t, t),
            sql.SQL(
                "UPDATE {} SET created_at = created_at + interval '40 days'"
                " WHERE ctid = (SELECT ctid FROM {} WHERE created_at IS NOT NULL"
                " ORDER BY random() LIMIT 1)"
            ).format(t, t),
            sql.SQL(
                "DELETE FROM {} WHERE ctid = (SELECT ctid FROM {} ORDER BY random() LIMIT 1)"
            ).format(t, t),
            sql.SQL(
                "UPDATE {} SET created_at = NULL WHERE ctid = (SELECT ctid FROM {}"
                " ORDER BY random() LIMIT 1)"
            ).format(t, t),
        ]
        try:
            with connect(self.url) as conn:
                i = 0
                while not self.stop.is_set():
                    ts = START + timedelta(days=i % 400)
                    conn.execute(statements[i % len(statements)], {"i": i, "ts": ts})
                    i += 1
                    self.done = i
                    # A busy table, not a saturated one: unpaced on a table without a
                    # primary key (replayed row by row) the catch-up could never finish.
                    self.stop.wait(0.002)
        except Exception as exc:  # surfaced by the test
            self.error = exc

    def finish(self) -> int:
        self.stop.set()
        self.join(timeout=10)
        assert self.error is None, self.error
        return self.done


def run_inline(migration: Migration, name: str = "partition_migration", max_attempts: int = 4):
    """Run the job body in this thread with a real Run and RunContext, attempt after
    attempt while a simulated worker death ends one, like the runner's retries."""
    run = Run.objects.create(
        kind="migration",
        name=name,
        params={"migration_id": migration.pk},
        max_attempts=max_attempts,
        actor_name="test",
    )
    field = "run" if name == "partition_migration" else "rollback_run"
    Migration.objects.filter(pk=migration.pk).update(**{field: run})
    body = execution.run_migration if name == "partition_migration" else execution.run_rollback
    while True:
        run.attempt += 1
        ctx = RunContext(run, None)
        try:
            return run, body(ctx, migration.pk)
        except faults.WorkerDied:
            assert run.attempt < max_attempts
            continue


@pytest.fixture(autouse=True)
def _disarm_faults():
    yield
    faults.disarm()


@pytest.fixture
def payments(warehouse_db, pg_schema):
    create_payments(warehouse_db, pg_schema)
    return pg_schema


@pytest.fixture
def payments_with_null_keys(warehouse_db, pg_schema):
    """The payments table with 1 row in 97 without a key; test modules that want it
    everywhere override `payments` with it."""
    create_payments(warehouse_db, pg_schema, null_keys=True)
    return pg_schema


COLUMNS = (
    "id",
    "customer_id",
    "amount_cents",
    "currency",
    "status",
    "description",
    "created_at",
    "updated_at",
)


def make_twin(url: str, schema: str, table: str = "payments", twin: str = "twin") -> None:
    """A plain copy of the table: the writer's log is replayed on it afterwards."""
    with connect(url) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                sql.Identifier(schema, twin), sql.Identifier(schema, table)
            )
        )


class LoggedWriter(threading.Thread):
    """A writer of its own rows (ids above `owned_above`, and those it inserts) that
    logs every write with the row it produced, so the log replayed on a twin gives
    what the table must hold: 50% inserts, 35% updates (a third moving the row to
    another month, some to a NULL key), 15% deletes, `pause` seconds apart."""

    def __init__(self, url: str, schema: str, table: str, owned_above: int, pause=0.002):
        super().__init__(daemon=True)
        self.url, self.schema, self.table = url, schema, table
        self.owned_above, self.pause = owned_above, pause
        self.stop = threading.Event()
        self.log: list[tuple[str, tuple]] = []
        self.error: Exception | None = None
        self.rng = random.Random(11)

    @property
    def done(self) -> int:
        return len(self.log)

    def run(self) -> None:
        t = sql.Identifier(self.schema, self.table)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        insert = sql.SQL(
            "INSERT INTO {} (customer_id, amount_cents, currency, status, created_at, updated_at)"
            " VALUES (1 + %(i)s %% 50, %(i)s, 'USD', 'NEW', %(ts)s, now()) RETURNING {}"
        ).format(t, cols)
        updates = [
            sql.SQL(
                "UPDATE {} SET amount_cents = amount_cents + 1, status = 'CHANGED'"
                " WHERE id = %(id)s RETURNING {}"
            ).format(t, cols),
            sql.SQL(
                "UPDATE {} SET created_at = coalesce(created_at, %(ts)s) + interval '40 days'"
                " WHERE id = %(id)s RETURNING {}"
            ).format(t, cols),
            sql.SQL("UPDATE {} SET created_at = NULL WHERE id = %(id)s RETURNING {}").format(
                t, cols
            ),
        ]
        delete = sql.SQL("DELETE FROM {} WHERE id = %(id)s RETURNING {}").format(t, cols)
        try:
            with connect(self.url) as conn:
                owned = [
                    r[0]
                    for r in conn.execute(
                        sql.SQL("SELECT id FROM {} WHERE id > %s").format(t), [self.owned_above]
                    )
                ]
                i = 0
                while not self.stop.is_set():
                    i += 1
                    roll = self.rng.random()
                    params = {"i": i, "ts": START + timedelta(days=i % 400)}
                    if roll < 0.5 or not owned:
                        row = conn.execute(insert, params).fetchone()
                        owned.append(row[0])
                        self.log.append(("I", row))
                    elif roll < 0.85:
                        params["id"] = owned[self.rng.randrange(len(owned))]
                        which = 0 if roll < 0.65 else (1 if roll < 0.8 else 2)
                        self.log.append(("U", conn.execute(updates[which], params).fetchone()))
                    else:
                        params["id"] = owned.pop(self.rng.randrange(len(owned)))
                        self.log.append(("D", conn.execute(delete, params).fetchone()))
                    time.sleep(self.pause)
        except Exception as exc:  # surfaced by the test
            self.error = exc

    def finish(self) -> int:
        self.stop.set()
        self.join(timeout=20)
        assert self.error is None, self.error
        return self.done

    def replay_on(self, twin: str) -> None:
        """The log, in its order, on the twin."""
        t = sql.Identifier(self.schema, twin)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in COLUMNS[1:])
        with connect(self.url) as conn, conn.transaction():
            for op, row in self.log:
                if op == "I":
                    conn.execute(
                        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                            t, cols, sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))
                        ),
                        row,
                    )
                elif op == "U":
                    conn.execute(
                        sql.SQL("UPDATE {} SET {} WHERE id = %s").format(t, sets),
                        [*row[1:], row[0]],
                    )
                else:
                    conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(t), [row[0]])

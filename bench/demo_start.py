"""Benchmark: seconds from `make demo` to a populated dashboard (issue 16: under a minute).

    .venv/bin/python bench/demo_start.py            # a fresh start, then a second `make demo`

Runs `make demo` twice on ports and databases of its own (web 8100, BigQuery emulator
9150/9160, warehouse database `opsconsole_demo_timing`, console database
`bench/out/demo-timing.sqlite3`, Redis databases 10 (cache) and 11 (broker); each can be changed
by the environment variable named in `Config`), so it does not touch a demo already
running:
1. from scratch, as a newcomer's first `make demo` after the setup step: the warehouse
   database, the console's SQLite file and both Redis databases emptied first;
2. again on the data the first run left (the second `make demo` on a machine).
Each time it signs in as the demo admin, polls the dashboard until it shows real figures
(a cache hit rate and its chart, the slowest queries, a run) and the partitions inventory lists the
demo tables, prints the seconds at which each phase ended, then stops everything it
started (one process group). It asserts nothing. Never run it while tests run.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo-timing-pw-1"
GIVE_UP_S = 300
# The lines demo.sh (and setup.sh) print as each phase begins or ends.
MARKERS = {
    "setup checked": "== Ready",
    "emulator started": "== BigQuery emulator on",
    "migrated, first demo data loaded": "== migrated, demo data loaded",
}
# demo_setup's own figures, printed with the phases.
DETAILS = ("migrate_seconds:", "loader_seconds:", "console:")
# What a populated dashboard shows (its htmx partial), each as a pattern of the page.
POPULATED = {
    "cache hit rate": re.compile(r"hit rate [\d.]+%"),
    "hit-rate chart": re.compile(r"<svg class=\"chart\""),
    "slowest queries": re.compile(r"<td class=\"num nowrap\">[\d,]+ ms</td>"),
    "a run": re.compile(r"href=\"/jobs/runs/\d+/\""),
}


@dataclass
class Config:
    web_port: int = int(os.environ.get("DEMO_WEB_PORT", 8100))
    bq_rest_port: int = int(os.environ.get("BQ_REST_PORT", 9150))
    bq_grpc_port: int = int(os.environ.get("BQ_GRPC_PORT", 9160))
    warehouse_db: str = os.environ.get("DEMO_WAREHOUSE_DB", "opsconsole_demo_timing")
    sqlite_file: str = os.environ.get("DEMO_SQLITE_FILE", "bench/out/demo-timing.sqlite3")
    cache_url: str = os.environ.get("DEMO_CACHE_URL", "redis://127.0.0.1:6379/10")
    broker_url: str = os.environ.get("DEMO_BROKER_URL", "redis://127.0.0.1:6379/11")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def environment(self) -> dict[str, str]:
        warehouses = (
            f"main=postgres://postgres@127.0.0.1:5432/{self.warehouse_db},"
            f"analytics=bigquery://demo-proj/analytics?endpoint=http://127.0.0.1:{self.bq_rest_port}"
        )
        return os.environ | {
            "WEB_PORT": str(self.web_port),
            "BQ_REST_PORT": str(self.bq_rest_port),
            "BQ_GRPC_PORT": str(self.bq_grpc_port),
            "WAREHOUSES": warehouses,
            "DATABASE_URL": f"sqlite:///{ROOT / self.sqlite_file}",
            "CACHE_TARGETS": f"main={self.cache_url}",
            "REDIS_URL": self.broker_url,
            "DEMO_PASSWORD": PASSWORD,
            "CONSOLE_URL": self.base,
        }


@dataclass
class Phases:
    started: float = field(default_factory=time.monotonic)
    ended: dict[str, float] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    def mark(self, name: str) -> None:
        self.ended.setdefault(name, round(time.monotonic() - self.started, 1))


def start_afresh(config: Config) -> None:
    """What a newcomer's machine holds before the first `make demo` (after setup)."""
    admin = "postgres://postgres@127.0.0.1:5432/postgres"
    db = sql.Identifier(config.warehouse_db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(db))
    warehouse = f"postgres://postgres@127.0.0.1:5432/{config.warehouse_db}"
    with psycopg.connect(warehouse, autocommit=True) as conn:  # as scripts/setup.sh does
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    (ROOT / config.sqlite_file).unlink(missing_ok=True)
    for url in (config.cache_url, config.broker_url):
        redis.Redis.from_url(url).flushdb()


def follow_output(demo: subprocess.Popen, phases: Phases, log: Path) -> None:
    with log.open("w") as out:
        for line in demo.stdout:
            out.write(line)
            out.flush()
            for name, marker in MARKERS.items():
                if marker in line:  # setup.sh's lines are in bold
                    phases.mark(name)
            if line.startswith(DETAILS):
                phases.details.append(line.strip())


def sign_in(config: Config) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{config.base}/login/", timeout=5)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{config.base}/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{config.base}/login/"},
        timeout=5,
    )
    if "/login/" in answer.url:
        raise RuntimeError("the demo admin could not sign in")
    return session


def missing_figures(session: requests.Session, config: Config) -> list[str]:
    """What the dashboard and the partitions inventory do not show yet."""
    tiles = session.get(config.base + "/", headers={"HX-Request": "true"}, timeout=10).text
    missing = [name for name, pattern in POPULATED.items() if not pattern.search(tiles)]
    inventory = session.get(config.base + "/partitions/", timeout=30).text
    if "payments" not in inventory:
        missing.append("partitions inventory")
    return missing


def wait_until_populated(demo: subprocess.Popen, config: Config, phases: Phases) -> list[str]:
    session, missing = None, list(POPULATED)
    while time.monotonic() - phases.started < GIVE_UP_S and demo.poll() is None:
        try:
            if session is None:
                session = sign_in(config)
                phases.mark("web answers, admin signed in")
            missing = missing_figures(session, config)
            for name in set(POPULATED) - set(missing):
                phases.mark(f"shows {name}")
        except (requests.ConnectionError, requests.Timeout):
            pass
        if not missing:
            phases.mark("dashboard populated")
            break
        time.sleep(0.5)
    return missing


def wait_until_idle(demo: subprocess.Popen, config: Config, phases: Phases) -> None:
    """Until the dashboard runs nothing: the full shop.orders table is loaded, so that
    the second `make demo` finds what a demo left running for a while leaves."""
    session = sign_in(config)
    while time.monotonic() - phases.started < GIVE_UP_S and demo.poll() is None:
        tiles = session.get(config.base + "/", headers={"HX-Request": "true"}, timeout=10)
        if "Nothing running." in tiles.text:
            phases.mark("background runs ended")
            return
        time.sleep(1)


def stop(demo: subprocess.Popen) -> None:
    """Ctrl-C, as the operator does; then harder signals if anything of the group lingers."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(demo.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            demo.poll()  # reap `make` itself
            try:
                os.killpg(demo.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def run_demo(config: Config, label: str) -> Phases:
    log = ROOT / "bench" / "out" / f"demo-timing-{label}.log"
    phases = Phases()
    demo = subprocess.Popen(
        ["make", "demo"],
        cwd=ROOT,
        env=config.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    reader = threading.Thread(target=follow_output, args=(demo, phases, log), daemon=True)
    reader.start()
    try:
        missing = wait_until_populated(demo, config, phases)
        if not missing:
            wait_until_idle(demo, config, phases)
    finally:
        stop(demo)
    print(f"\n{label}: `make demo` (output in {log.name})")
    for name, seconds in sorted(phases.ended.items(), key=lambda item: item[1]):
        print(f"  {seconds:6.1f} s  {name}")
    if missing:
        print(f"  not populated after {GIVE_UP_S} s: {', '.join(missing)}")
    for line in phases.details:
        print(f"  {line}")
    return phases


def main() -> None:
    config = Config()
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    start_afresh(config)
    run_demo(config, "first-run")
    run_demo(config, "second-run")


if __name__ == "__main__":
    sys.exit(main())

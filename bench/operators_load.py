"""Benchmark: N operators browsing the console at once, against the README's server.

    .venv/bin/python bench/operators_load.py                 # 50 operators, 60 s per phase
    BENCH_OPERATORS=3 BENCH_SECONDS=5 .venv/bin/python bench/operators_load.py   # a smoke run

Starts what the Procfile starts (gunicorn, 2 workers x 4 threads, and a Celery worker)
with production settings (DEBUG off, manifest static files), on a database and a Redis
database of its own. N operators, each with an account of their own, log in through the
login form and browse every page (full pages and the htmx partials those pages poll),
for S seconds with 1 s think time, then S seconds with none; in each phase as many
clients fetch the bare `/healthz` in the same run, at the same concurrency, as the
baseline, measured right after. Prints p50/p95/p99 per page, errors, lost sessions
(a page answering with the login form), requests per second, and the server's CPU time
per request (gunicorn's processes; less sensitive to a busy machine than req/s). It
asserts nothing.
Never run it while tests run.

Targets (issue 13): with 1 s think time, p95 < 100 ms and no errors; with none, the
console's req/s at least 40% of /healthz's.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BENCH_DB = "opsconsole_bench_operators"
OPERATORS = int(os.environ.get("BENCH_OPERATORS", 50))
SECONDS = float(os.environ.get("BENCH_SECONDS", 60))
PASSWORD = "bench-operator-pw-1"

# What an operator's browser asks for: each page, then the partials it polls (htmx).
PAGES = [
    ("dashboard", "/", False),
    ("dashboard readiness tile", "/dashboard/readiness/", True),
    ("jobs history", "/jobs/", False),
    ("jobs history rows", "/jobs/", True),
    ("jobs overview", "/jobs/overview/", False),
    ("job stats", "/jobs/stats/bench_job/", False),
    ("run detail", "/jobs/runs/{run_id}/", False),
    ("run progress", "/jobs/runs/{run_id}/", True),
    ("audit log", "/audit/", False),
    ("cache stats", "/cache/", False),
    ("cache stats partial", "/cache/?target=main", True),
    ("cache history", "/cache/history/?target=main&range=1h", True),
    ("cache keys", "/cache/keys/?target=main", False),
    ("partitions", "/partitions/", False),
    ("slow queries", "/queries/", False),
    ("query activity", "/queries/activity/?warehouse=main", True),
    ("runbooks", "/runbooks/", False),
]


def env() -> dict[str, str]:
    """Production settings on the benchmark's own database, Redis databases and prefix."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "REDIS_URL": "redis://127.0.0.1:6379/11",
        "CACHE_TARGETS": "main=redis://127.0.0.1:6379/10",
        "WAREHOUSES": f"main=postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "KEY_PREFIX": "opsconsole-bench-operators:",
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
        "AUDIT_KEY": "bench-audit-" + uuid.uuid4().hex * 2,
        "NOTIFICATIONS_KEY": "bench-notifications-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "AXES_FAILURE_LIMIT": "1000",
    }


def manage(*args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env(), check=True, timeout=600
    )


def create_database() -> None:
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
        )
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def drop_database() -> None:
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
        )


SETUP = """
from django.contrib.auth import get_user_model
from jobs.models import Run
from opsconsole.roles import set_role
User = get_user_model()
for i in range({n}):
    user = User.objects.create_user(username=f"operator{{i}}", password={pw!r})
    set_role(user, "operator")
run = Run.objects.create(name="bench_job", actor_name="bench", status="succeeded",
                         progress_done=1, progress_total=1)
print(run.pk)
"""


def seed() -> int:
    """Operators' accounts and one run to look at; returns the run's id."""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP.format(n=OPERATORS, pw=PASSWORD)],
        cwd=ROOT,
        env=env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return int(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_services(port: int) -> list[subprocess.Popen]:
    """The Procfile's web and worker processes (gunicorn on `port`)."""
    web = [str(VENV_BIN / "gunicorn"), "opsconsole.wsgi", "--bind", f"127.0.0.1:{port}"]
    web += ["--workers", "2", "--threads", "4", "--log-level", "warning"]
    worker = [str(VENV_BIN / "celery"), "-A", "opsconsole", "worker", "--concurrency", "2"]
    worker += ["--loglevel", "WARNING"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env(), start_new_session=True) for cmd in (web, worker)
    ]
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return procs
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not answer /healthz within 60 s")
        time.sleep(0.2)


def stop_services(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class Browser:
    """One operator's browser: a keep-alive connection and its own cookies. Production
    cookies are Secure, so the proxy header says https and cookies are sent by hand."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: str | None = None, htmx: bool = False):
        headers = {"X-Forwarded-Proto": "https", "Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"https://127.0.0.1{path}"
        try:
            response, content = self._send(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed an idle keep-alive connection: a browser sends the request
            # again on a new one, and so does this client (once).
            self._reconnect()
            response, content = self._send(method, path, body, headers)
        except (OSError, http.client.HTTPException):
            self._reconnect()
            raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.headers, content

    def _send(self, method, path, body, headers):
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        return response, response.read()

    def _reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def log_in(self, username: str) -> None:
        _, _, page = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
        status, headers, _ = self.request("POST", "/login/", urlencode(form))
        if status != 302 or "/login/" in headers.get("Location", ""):
            raise RuntimeError(f"{username} could not log in ({status})")


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.lost_sessions = 0

    def add(self, page: str, ms: float, ok: bool, lost: bool = False) -> None:
        with self.lock:
            self.times[page].append(ms)
            if not ok:
                self.errors[page] += 1
            if lost:
                self.lost_sessions += 1


def log_in_everyone(port: int) -> list[Browser | None]:
    """Each operator logs in through the form (before the clock starts: a password
    hash costs a deliberate half second); None for one who could not."""
    browsers: list[Browser | None] = [None] * OPERATORS

    def log_in(index: int) -> None:
        browser = Browser(port)
        try:
            browser.log_in(f"operator{index}")
        except Exception as exc:
            print(f"operator{index}: {exc}", file=sys.stderr)
            return
        browsers[index] = browser

    threads = [threading.Thread(target=log_in, args=(i,)) for i in range(OPERATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return browsers


def operator(
    browser: Browser | None, index: int, run_id: int, think_s: float, until: float, tally: Tally
):
    if browser is None:
        tally.add("login", 0.0, False, lost=True)
        return
    step = index  # operators start on different pages
    while time.monotonic() < until:
        name, path, htmx = PAGES[step % len(PAGES)]
        step += 1
        started = time.perf_counter()
        try:
            status, headers, _ = browser.request("GET", path.format(run_id=run_id), htmx=htmx)
        except Exception:
            tally.add(name, (time.perf_counter() - started) * 1000, False)
            continue
        lost = status == 302 and "/login/" in headers.get("Location", "")
        tally.add(name, (time.perf_counter() - started) * 1000, status == 200, lost)
        if think_s:
            time.sleep(think_s)


def bare(port: int, think_s: float, until: float, tally: Tally) -> None:
    browser = Browser(port)
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            status, _, _ = browser.request("GET", "/healthz")
        except Exception:
            tally.add("/healthz", (time.perf_counter() - started) * 1000, False)
            continue
        tally.add("/healthz", (time.perf_counter() - started) * 1000, status == 200)
        if think_s:
            time.sleep(think_s)


def timed_threads(threads: list[threading.Thread]) -> float:
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children: gunicorn's master and
    workers. Per request, it is the server's cost whatever else the machine runs."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    total = 0.0
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def phase(
    port: int, browsers: list[Browser | None], run_id: int, think_s: float, web_pid: int
) -> None:
    """N operators for SECONDS, then N bare clients for SECONDS (one after the other, so
    that neither takes the other's CPU); prints the figures."""
    console, baseline = Tally(), Tally()
    until = time.monotonic() + SECONDS
    cpu_start = cpu_seconds(web_pid)
    elapsed = timed_threads(
        [
            threading.Thread(target=operator, args=(b, i, run_id, think_s, until, console))
            for i, b in enumerate(browsers)
        ]
    )
    cpu_console = cpu_seconds(web_pid)
    until = time.monotonic() + SECONDS
    bare_elapsed = timed_threads(
        [
            threading.Thread(target=bare, args=(port, think_s, until, baseline))
            for _ in range(OPERATORS)
        ]
    )
    cpu_bare = cpu_seconds(web_pid)
    print(
        f"\n== {OPERATORS} operators, then {OPERATORS} /healthz clients, think time "
        f"{think_s:g} s, {elapsed:.0f} s each"
    )
    print(f"{'page':28} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    everything = []
    for tally in (console, baseline):
        for name in sorted(tally.times):
            times = tally.times[name]
            everything += times if tally is console else []
            print(
                f"{name:28} {len(times):6} {pct(times, 50):8.1f} {pct(times, 95):8.1f} "
                f"{pct(times, 99):8.1f} {tally.errors[name]:7}"
            )
    console_n = sum(len(t) for t in console.times.values())
    bare_n = sum(len(t) for t in baseline.times.values())
    print(
        f"{'console (all pages)':28} {console_n:6} {pct(everything, 50):8.1f} "
        f"{pct(everything, 95):8.1f} {pct(everything, 99):8.1f} "
        f"{sum(console.errors.values()):7}"
    )
    print(f"lost sessions: {console.lost_sessions}")
    console_ms = 1000 * (cpu_console - cpu_start) / max(console_n, 1)
    bare_ms = 1000 * (cpu_bare - cpu_console) / max(bare_n, 1)
    print(f"server CPU per request: console {console_ms:.2f} ms, /healthz {bare_ms:.2f} ms")
    console_rps, bare_rps = console_n / elapsed, bare_n / bare_elapsed
    share = 100 * console_rps / bare_rps if bare_rps else 0.0
    print(f"req/s: console {console_rps:.1f}, /healthz {bare_rps:.1f} ({share:.0f}%)")


def pct(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> None:
    create_database()
    procs: list[subprocess.Popen] = []
    static = ROOT / "staticfiles"
    had_static = static.exists()
    try:
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        run_id = seed()
        port = free_port()
        procs = start_services(port)
        browsers = log_in_everyone(port)
        for think_s in (1.0, 0.0):
            phase(port, browsers, run_id, think_s, procs[0].pid)
    finally:
        stop_services(procs)
        drop_database()
        if not had_static:
            shutil.rmtree(static, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Bad input never gives a 500: every console URL the resolver knows, as an admin,
with hostile values in each query parameter and form field, one field at a time.

Fields come from the pages themselves (every <form> and every same-page link the
console renders) plus the query parameters views read directly. Each response must
not be a 5xx, must not echo the payload unescaped, must not show SQL errors or a
traceback, and a refused POST must change nothing. Django's own admin (/admin/) is
left out: it is Django's, superuser-only, and has its own tests.

Runtime is bounded: every field gets the HTML payload, a number past 64 bits and a
rotating share of the others, so all payloads are sent many times without sending
all of them everywhere.
"""

import itertools
import re
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest
import redis
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from psycopg import sql

from jobs.models import Run
from opsconsole import audit
from opsconsole.models import AuditEvent, RunbookRequest
from partitions.models import Migration
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.django_db

MARKER = "<script>alert('x1')</script>"
HTML_PAYLOAD = f"\"'>{MARKER}<img src=x onerror=alert(1)>"
HUGE_NUMBER = "99999999999999999999999"  # past 64 bits: the usual way to a 500
PAYLOADS = [
    "' OR '1'='1' --",
    '"; DROP TABLE opsconsole_auditevent; --',
    "\\\\'\\",
    "a\x00b",
    "x" * 10_240,
    "\u202eevil\u202c \u200f\u05d0 \U0001f4a5 e\u0301",
    "*?[]\\",
    "user:[a-",
    "1); SELECT pg_sleep(0); --",
    "-1",
    "-99999999999999999999",
    "1e309",
    "NaN",
    "0x10",
    "",
]
PER_FIELD = 2  # rotating payloads per field, besides HTML_PAYLOAD and HUGE_NUMBER
# Query parameters a view reads that its page may not render as a field (read from
# request.GET directly, or only in a next-page link), by path prefix; the rest come
# from the forms and links each page renders.
DIRECT_PARAMS = {
    "/cache/": ["target"],
    "/cache/history/": ["range"],
    "/cache/keys/": ["pattern", "cursor"],
    "/cache/keys/inspect/": ["key"],
    "/partitions/": ["warehouse", "schema", "table"],
    "/queries/": ["warehouse"],
    "/queries/explain/": ["queryid", "statement"],
    "/queries/indexes/": ["min_ms", "schema"],
}
LEAKS = [
    "Traceback (most recent call last)",
    'File "/',
    "psycopg",
    "ProgrammingError",
    "OperationalError",
    "DataError",
    "IntegrityError",
    "redis.exceptions",
    "django.db.utils",
]
PROBE_KEYS = f"hostile-{uuid.uuid4().hex[:8]}:"
SKIP_PREFIXES = ("/admin/", "/logout/", "/static/")


@dataclass
class FormSpec:
    method: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _PageReader(HTMLParser):
    """The forms (method, action, fields with their current values) and links of a page."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.forms: list[FormSpec] = []
        self.links: list[str] = []
        self._form: FormSpec | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            action = a.get("action") or self.path
            self._form = FormSpec(
                a.get("method", "get").lower(), urlsplit(action).path or self.path
            )
            self.forms.append(self._form)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif self._form is not None and tag in ("input", "textarea", "select") and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                self._form.fields.setdefault(a["name"], "")
            else:
                self._form.fields[a["name"]] = a.get("value") or ""
            self._select = a["name"] if tag == "select" else None
        elif (
            tag == "option"
            and self._form is not None
            and self._select
            and ("selected" in a or not self._form.fields.get(self._select))
        ):
            self._form.fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        if tag == "select":
            self._select = None


def console_paths(values: dict[str, str]) -> list[str]:
    """Every console URL pattern, with its path arguments filled from `values`."""
    paths = []

    def walk(patterns, prefix):
        for p in patterns:
            route = prefix + str(p.pattern)
            if ("/" + route).startswith(SKIP_PREFIXES):
                continue
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                paths.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m[1]], route))

    walk(get_resolver().url_patterns, "")
    return [p for p in paths if not p.startswith(SKIP_PREFIXES)]


def mutations() -> tuple:
    """What a refused request must not change. Of the cache, only this test's own keys
    count: other test processes share the cache target's Redis db."""
    cache = redis.Redis.from_url(settings.CACHE_TARGETS["main"])
    try:
        keys = len(list(cache.scan_iter(match=PROBE_KEYS + "*", count=1000)))
    finally:
        cache.close()
    return (
        Run.objects.count(),
        Migration.objects.count(),
        RunbookRequest.objects.count(),
        AuditEvent.objects.filter(outcome="ok").count(),
        keys,
    )


@pytest.fixture
def warehouse_of_its_own():
    """A warehouse database for this test alone: the index advisor's pages then read
    only this test's statements, not every other test's workload."""
    name = f"opsconsole_test_hostile_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("CREATE TABLE public.events (id bigint, at timestamptz)")
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def world(make_user, warehouse_of_its_own, settings):
    """An admin, a failed run, a table in the warehouse and a key in the cache."""
    settings.READYZ_REQUIRE_WORKER = False
    settings.WAREHOUSES = {"main": warehouse_of_its_own}
    cache = redis.Redis.from_url(settings.CACHE_TARGETS["main"])
    cache.mset({f"{PROBE_KEYS}{i}": "1" for i in range(20)})
    run = Run.objects.create(name="table_sync", actor_name="x", status="failed", error="boom")
    admin = make_user("admin")
    audit.write(admin, "x.seed")
    yield {
        "admin": admin,
        "values": {
            "user_id": str(admin.pk),
            "run_id": str(run.pk),
            "task_id": "1",
            "name": "table_sync",
            "warehouse": "main",
            "migration_id": "1",
            "pid": "1",
            "request_id": "1",
            "token_id": "1",
            "target": "main",
            "channel_id": "1",
            "subscription_id": "1",
        },
    }
    for key in cache.scan_iter(match=PROBE_KEYS + "*"):
        cache.delete(key)
    cache.close()


_ROTATION = itertools.count()


def rotating() -> list[str]:
    """HTML_PAYLOAD, HUGE_NUMBER and the next PER_FIELD payloads of the rotation."""
    start = next(_ROTATION) * PER_FIELD
    turn = [PAYLOADS[(start + i) % len(PAYLOADS)] for i in range(PER_FIELD)]
    return [HTML_PAYLOAD, HUGE_NUMBER, *turn]


def check(response, where: str, problems: list[str], path: str) -> None:
    if response.status_code >= 500:
        problems.append(f"{where}: {response.status_code}")
        return
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    body = raw.decode(errors="replace")
    if "text/html" in response.get("Content-Type", "") and MARKER in body:
        problems.append(f"{where}: the payload came back unescaped")
    for leak in LEAKS:
        if leak in body:
            problems.append(f"{where}: response shows {leak!r}")


def discover(client, pages: list[str], problems: list[str]) -> dict:
    """{(method, path): {field: value}} from every page, and from each page once more
    with the query of a link to it (a table page needs ?schema=&table= to show its form)."""
    specs: dict[tuple[str, str], dict[str, str]] = {}
    queue = [(path, "") for path in pages]
    with_query: set[str] = set()
    while queue:
        path, query = queue.pop(0)
        response = client.get(path, dict(parse_qsl(query)))
        check(response, f"GET {path}?{query}", problems, path)
        get_fields = specs.setdefault(("get", path), {})
        get_fields.update(parse_qsl(query))
        for prefix, names in DIRECT_PARAMS.items():
            if path.startswith(prefix):
                get_fields.update({name: "" for name in names if name not in get_fields})
        if "text/html" not in response.get("Content-Type", ""):
            continue
        reader = _PageReader(path)
        reader.feed(response.content.decode(errors="replace"))  # HTML is never streamed
        for form in reader.forms:
            specs.setdefault((form.method, form.action), {}).update(form.fields)
        for href in reader.links:
            link = urlsplit(href)
            if link.path in pages and link.query and link.path not in with_query:
                with_query.add(link.path)
                queue.append((link.path, link.query))
    return specs


def test_hostile_values_in_every_field_never_give_a_500(client, world):
    client.raise_request_exception = False
    client.force_login(world["admin"])
    problems: list[str] = []
    pages = console_paths(world["values"])
    specs = discover(client, pages, problems)
    sent = 0
    for (method, path), fields in sorted(specs.items()):
        if path.startswith(SKIP_PREFIXES) or (method == "get" and path not in pages):
            continue
        defaults = {k: v for k, v in fields.items() if k != "csrfmiddlewaretoken"}
        for name in sorted(defaults):
            for payload in rotating():
                data = {**defaults, name: payload}
                where = f"{method.upper()} {path} {name}={payload[:30]!r}"
                if method == "post":
                    before = mutations()
                    response = client.post(path, data)
                    after = mutations()
                    if 400 <= response.status_code < 500 and after != before:
                        problems.append(
                            f"{where}: refused ({response.status_code}) yet changed "
                            f"(runs, migrations, requests, ok events, keys): {before} → {after}"
                        )
                else:
                    response = client.get(path, data)
                check(response, where, problems, path)
                sent += 1
    assert sent > 500, f"only {sent} hostile requests: the walk found too few fields"
    assert problems == [], "\n".join(problems[:40])


def test_an_invalid_scan_cursor_is_a_clear_400(client_as):
    response = client_as("viewer").get(
        "/cache/keys/",
        {"target": "main", "pattern": "user_profile:*", "cursor": "99999999999999999999999"},
    )
    assert response.status_code == 400
    assert "SCAN cursor is not one Redis gives out" in response.content.decode()


def test_an_unreachable_warehouse_page_is_a_503_with_its_message(client_as, settings):
    settings.WAREHOUSES = {"main": "postgres://postgres@127.0.0.1:1/nowhere"}
    response = client_as("viewer").get("/partitions/main/table/?schema=public&table=events")
    assert response.status_code == 503
    assert "Warehouse main is unreachable" in response.content.decode()

"""The WAREHOUSES setting, read in one place.

    main=postgres://user@host:5432/db[?sslmode=…&explain_role=…]
    analytics=bigquery://project/dataset[?location=EU]        (credentials from the environment)
    local=bigquery://project/dataset?endpoint=http://127.0.0.1:9050   (emulator, anonymous)

Every query parameter of a URL stays readable in Warehouse.options. For PostgreSQL,
the console's own parameters (CONSOLE_OPTIONS) are taken out of the URL handed to
libpq, which would refuse them; the rest (sslmode, …) stay for libpq.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from .errors import InvalidWarehouseURL, UnknownWarehouse

POSTGRES_SCHEMES = ("postgres", "postgresql")
# Query parameters that configure the console, not the PostgreSQL connection.
CONSOLE_OPTIONS = frozenset({"explain_role"})
# Google's rules: 6-30 characters, lowercase letter first, no trailing hyphen.
PROJECT_RE = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
DATASET_RE = re.compile(r"\w{1,1024}")
LOCATION_RE = re.compile(r"[a-z]+(-[a-z0-9]+)*")
DEFAULT_LOCATION = "us"


@dataclass(frozen=True)
class Warehouse:
    """One entry of WAREHOUSES, parsed and validated."""

    name: str
    url: str
    kind: str  # "postgres" or "bigquery"
    options: dict[str, str] = field(default_factory=dict)
    project: str = ""  # BigQuery only
    dataset: str = ""  # BigQuery only

    @property
    def conninfo(self) -> str:
        """The URL libpq receives: without the console's own query parameters."""
        parts = urlsplit(self.url)
        kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in CONSOLE_OPTIONS]
        return urlunsplit(parts._replace(query=urlencode(kept)))

    @property
    def endpoint(self) -> str | None:
        """A BigQuery API endpoint (the emulator), or None for Google's."""
        return self.options.get("endpoint") or None

    @property
    def location(self) -> str:
        """The BigQuery region of the dataset's jobs (region-<location>), lowercase."""
        return self.options.get("location", DEFAULT_LOCATION).lower()

    @property
    def label(self) -> str:
        """Where it is, without credentials: for pages and logs."""
        return safe_label(self.url)


def kind_of(url: str) -> str:
    """ "postgres" or "bigquery"; InvalidWarehouseURL (a ValueError) for other schemes."""
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme == "bigquery":
        return "bigquery"
    raise InvalidWarehouseURL(
        f"unsupported warehouse scheme {scheme!r} (use postgres:// or bigquery://)"
    )


def parse(url: str, name: str = "") -> Warehouse:
    """A Warehouse from its URL; InvalidWarehouseURL when a name is not a valid one."""
    if not url.isprintable():
        # urlsplit() silently drops newlines and tabs: refuse them rather than guess.
        raise InvalidWarehouseURL(f"a warehouse URL has no control characters: {url!r}")
    kind = kind_of(url)
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if kind == "postgres":
        return Warehouse(name=name, url=url, kind=kind, options=options)
    project, dataset = parts.netloc, parts.path.strip("/")
    if not project or not dataset:
        raise InvalidWarehouseURL("a BigQuery warehouse URL is bigquery://project/dataset")
    _check(PROJECT_RE, project, "project id")
    _check(DATASET_RE, dataset, "dataset")
    found = Warehouse(name, url, kind, options, project=project, dataset=dataset)
    _check(LOCATION_RE, found.location, "location")
    return found


def _check(pattern: re.Pattern, value: str, what: str) -> None:
    # fullmatch: a `$` anchor would let a trailing newline through.
    if not pattern.fullmatch(value):
        raise InvalidWarehouseURL(f"invalid BigQuery {what} {value!r}")


def configured() -> dict[str, str]:
    """WAREHOUSES as set: name -> URL, in the order written."""
    return dict(getattr(settings, "WAREHOUSES", {}) or {})


def names() -> list[str]:
    return list(configured())


def url_of(name: str) -> str:
    try:
        return configured()[name]
    except KeyError:
        raise UnknownWarehouse(f"no warehouse named {name!r} (WAREHOUSES setting)") from None


def get(name: str) -> Warehouse:
    """The parsed warehouse `name`; UnknownWarehouse or InvalidWarehouseURL."""
    return parse(url_of(name), name)


def of_kind(kind: str) -> dict[str, str]:
    """name -> URL of the warehouses of one kind; URLs of no known kind are left out."""
    return {name: url for name, url in configured().items() if _kind_or_none(url) == kind}


def _kind_or_none(url: str) -> str | None:
    try:
        return kind_of(url)
    except InvalidWarehouseURL:
        return None


def postgres_url(name: str) -> str:
    """The URL of PostgreSQL warehouse `name`; UnknownWarehouse if there is none."""
    found = of_kind("postgres")
    if name not in found:
        known = ", ".join(found) or "none configured"
        raise UnknownWarehouse(f"No PostgreSQL warehouse named {name!r} ({known}).")
    return found[name]


def default_postgres() -> str | None:
    """The first PostgreSQL warehouse, what pages and commands show when none is chosen."""
    return next(iter(of_kind("postgres")), None)


def safe_label(url: str) -> str:
    """host:port/db (or project/dataset) without credentials, for pages and logs."""
    parts = urlsplit(url)
    if parts.scheme == "bigquery":
        return f"{parts.netloc}{parts.path}"
    return f"{parts.hostname or ''}:{parts.port or 5432}{parts.path}"


@dataclass(frozen=True)
class Reachable:
    """What a readiness ping learned: a one-line description, and whether the console
    logs in as a superuser (it should not: /readyz warns)."""

    detail: str
    superuser: bool = False

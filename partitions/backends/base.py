"""The one small interface every warehouse backend implements.

Everything above the backends (services, views, the CLI) speaks in these types;
SQL text exists only inside the backends.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

INTEGER_TYPES = {"smallint", "integer", "bigint"}
TIME_TYPES = {
    "timestamp with time zone",
    "timestamp without time zone",
    "date",
    "TIMESTAMP",
    "DATE",
    "DATETIME",
}


CONSENT_LOSE_UNIQUENESS = "lose uniqueness"
NULL_KEY_CHOICES = ("refuse", "lose_uniqueness", "backfill")


class PlanRefused(Exception):
    """The table cannot be migrated as asked; the message tells the operator why."""


class StepFailed(Exception):
    """A step found a problem (a verification difference, a lost rename, …)."""


@dataclass
class Column:
    name: str
    type: str
    nullable: bool = True

    @property
    def is_time(self) -> bool:
        return self.type in TIME_TYPES

    @property
    def key_kind(self) -> str:
        """What a partition key of this type is: time, integer, uuid or other."""
        if self.is_time:
            return "time"
        if self.type in INTEGER_TYPES:
            return "integer"
        return "uuid" if self.type == "uuid" else "other"


@dataclass
class Dependent:
    kind: str  # view, foreign key (inbound/outbound), trigger, grant, sequence, index
    name: str
    carried_over: str  # how the migration carries it over, in operator words
    blocking: bool = False
    columns: list[str] = field(default_factory=list)  # an inbound foreign key's referenced columns


@dataclass
class PartitionInfo:
    name: str
    bounds: str
    rows: int | None
    bytes: int | None
    modified: str | None = None


@dataclass
class TableInfo:
    schema: str
    name: str
    kind: str  # table, partitioned, view
    rows: int | None
    bytes: int | None
    columns: list[Column] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    partitioning: dict[str, Any] | None = None
    dependents: list[Dependent] = field(default_factory=list)
    rows_counted: bool = False  # rows from COUNT(*), not the catalog's estimate

    @property
    def time_columns(self) -> list[Column]:
        return [c for c in self.columns if c.is_time]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MigrationOptions:
    column: str
    granularity: str = "month"
    # PostgreSQL: "range" (time, integer or UUIDv7 key), "hash" or "list". A range on
    # an integer key has ranges `width` ids wide (none: the plan picks a round width);
    # hash partitioning has `modulus` partitions.
    scheme: str = "range"
    width: int | None = None
    modulus: int = 8
    # Integer ranges have no age: retention drops ranges only if the operator asks,
    # keeping the newest `keep_ranges` that hold ids.
    keep_ranges: int | None = None
    clustering: list[str] = field(default_factory=list)
    retention_days: int | None = None
    require_partition_filter: bool = False
    batch_rows: int = 50_000
    throttle_ms: int = 0
    premake: int = 3
    # Catch-up and lock (PostgreSQL): changes applied per replay round, the backlog
    # under which the swap (or swap back) takes its lock, and how long it waits for it.
    # NULL partition keys on a table with a primary key (PostgreSQL): "refuse",
    # "lose_uniqueness" with `consent` typed as CONSENT_LOSE_UNIQUENESS, or "backfill"
    # them with `null_backfill` (an ISO date or timestamp) before the copy.
    null_keys: str = "refuse"
    consent: str = ""
    null_backfill: str = ""
    copy_workers: int = 1  # batches copied at once, each on its own connection
    replay_batch: int = 5_000
    lock_backlog: int = 200
    lock_timeout_ms: int = 500
    catch_up_stall_s: float = 600.0  # a catch-up whose backlog stops shrinking fails then

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MigrationOptions":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StepReport:
    """What a backend step gets from the job: progress, log, stop checks and a
    place to commit its checkpoint. The job passes its RunContext-backed one."""

    def __init__(
        self,
        progress: Callable[[int, int | None, str], None] | None = None,
        log: Callable[[str], None] | None = None,
        check: Callable[[], None] | None = None,
        save: Callable[[dict], None] | None = None,
        checkpoint: dict | None = None,
        fault: Callable[[str, int], None] | None = None,
    ):
        self._progress = progress or (lambda done, total, message: None)
        self._log = log or (lambda line: None)
        self._check = check or (lambda: None)
        self._save = save or (lambda data: None)
        self._fault = fault or (lambda point, n: None)
        self.checkpoint = dict(checkpoint or {})

    def progress(self, done: int, total: int | None, message: str) -> None:
        self._progress(done, total, message)

    def log(self, line: str) -> None:
        self._log(line)

    def check(self) -> None:
        self._check()

    def save(self, **data: Any) -> None:
        self.checkpoint.update(data)
        self._save(self.checkpoint)

    def fault_point(self, point: str, n: int = 0) -> None:
        """Where tests inject a worker death (a no-op in production)."""
        self._fault(point, n)


class Backend(ABC):
    kind: str
    granularities: tuple[str, ...]
    steps: tuple[str, ...]

    @abstractmethod
    def ping(self) -> str: ...

    @abstractmethod
    def list_tables(self) -> list[TableInfo]: ...

    @abstractmethod
    def describe(self, schema: str, table: str) -> TableInfo: ...

    @abstractmethod
    def list_partitions(self, schema: str, table: str) -> list[PartitionInfo]: ...

    @abstractmethod
    def schema_fingerprint(self, info: TableInfo) -> str: ...

    @abstractmethod
    def plan(self, migration_id: int, info: TableInfo, options: MigrationOptions) -> dict: ...

    @abstractmethod
    def run_step(self, plan: dict, step: str, report: StepReport) -> dict:
        """Do one step of `plan` (idempotent: a resumed step picks up its checkpoint)."""

    @abstractmethod
    def undo(self, plan: dict, swapped: bool, report: StepReport) -> dict:
        """Put the original back: remove the half-built table, or swap back."""

    @abstractmethod
    def is_swapped(self, plan: dict) -> bool: ...

    @abstractmethod
    def maintain(self, plan: dict, dry_run: bool) -> dict:
        """Retention: pre-create upcoming partitions, drop expired ones (or report)."""

    @abstractmethod
    def drop_original(self, plan: dict) -> None:
        """After success: drop the kept original (or backup); ends the rollback window."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


NAME_RE = re.compile(r"^[^\x00]{1,200}$")


def validate_name(name: str, what: str = "name") -> str:
    """Any printable name is allowed (quotes, spaces, unicode); quoting makes it safe."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name != name.strip("\x00"):
        raise PlanRefused(f"invalid {what}: {name!r}")
    return name


def fit_identifier(base: str, suffix: str, limit: int = 63) -> str:
    """`base` + `suffix` cut (by UTF-8 bytes, as PostgreSQL counts) to `limit`."""
    room = limit - len(suffix.encode())
    cut = base.encode()[:room].decode("utf-8", errors="ignore")
    return cut + suffix

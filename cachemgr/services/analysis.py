"""Exact keyspace analysis: every key of every primary, not a sample.

Per namespace: key count, memory (MEMORY USAGE), keys without a TTL and the TTL spread;
per type counts; the biggest keys. Each step is one short server-side script (SCAN
COUNT n, n = CACHE_ANALYZE_COUNT, and for those keys TYPE, PTTL and MEMORY USAGE, tallied
inside Redis), so a node is blocked for one bounded step at a time and only the tallies
travel. Where Redis refuses EVAL the same step is pipelined from here. The primaries are
walked in parallel, each paced (pacing.paced, CACHE_ANALYZE_DUTY) so that a node also
rests between steps. The walk is a `cache.analyze` Run; its KeyspaceAnalysis row is the
checkpoint (each node's cursor and the tallies so far), written every few seconds, so a
cancelled or killed run resumes where it stopped.

SCAN returns every key that exists for the whole walk; a key written or deleted
meanwhile may or may not be counted, and one may be counted twice if Redis resizes
its table during the walk (the run's progress compares the count with DBSIZE).
"""

import heapq
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis
from django.utils import timezone

from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.actions import audited_action

from .. import addresses, conf, targets
from ..models import KeyspaceAnalysis
from . import pacing, parallel
from .keys import show

JOB_NAME = "cache.analyze"
TTL_BUCKETS = ("no TTL", "< 1 h", "< 1 d", "longer")
BIGGEST = 100
CHECKPOINT_EVERY_S = 2.0
NO_NAMESPACE = "(no namespace)"
# A cluster whose slots moved under the analysis is walked again from the start (see
# analyze): at most this many passes, each after waiting this long for a migration in
# progress to end.
CLUSTER_PASSES = 5
SLOTS_SETTLE_WAIT_S = 60.0

# One step: SCAN chunks of COUNT ARGV[2], and per key TYPE / PTTL / MEMORY USAGE, tallied
# per namespace, until the step has held the node ARGV[5] µs (Redis' own clock; at least
# one chunk) or the SCAN ended. Each key costs a few µs, so the budget, not the COUNT,
# bounds what another client's command can wait behind the step (plus one chunk).
# Returns {next cursor, {{ns, keys, bytes, no ttl, <1h, <1d, longer, {type, n, …}}, …},
# {key, type, bytes, pttl, …} for keys bigger than ARGV[3]}.
ANALYZE_STEP = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local started, budget = now(), tonumber(ARGV[5])
local threshold, cursor = tonumber(ARGV[3]), ARGV[1]
local groups, order, big = {}, {}, {}
local function tally(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' then
    local ns = string.match(key, '^([^:]*):') or ARGV[4]
    local pttl = redis.call('PTTL', key)
    local size = redis.call('MEMORY', 'USAGE', key) or 0
    local g = groups[ns]
    if not g then
      g = {0, 0, 0, 0, 0, 0, {}}
      groups[ns] = g
      order[#order + 1] = ns
    end
    g[1] = g[1] + 1
    g[2] = g[2] + size
    local bucket = 3
    if pttl >= 0 then
      if pttl < 3600000 then bucket = 4 elseif pttl < 86400000 then bucket = 5 else bucket = 6 end
    end
    g[bucket] = g[bucket] + 1
    g[7][kind] = (g[7][kind] or 0) + 1
    if size > threshold then
      big[#big + 1] = key
      big[#big + 1] = kind
      big[#big + 1] = size
      big[#big + 1] = pttl
    end
  end
end
repeat
  local reply = redis.call('SCAN', cursor, 'COUNT', ARGV[2])
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    tally(key)
  end
until cursor == '0' or now() - started >= budget
local out = {}
for _, ns in ipairs(order) do
  local g = groups[ns]
  local kinds = {}
  for kind, n in pairs(g[7]) do
    kinds[#kinds + 1] = kind
    kinds[#kinds + 1] = n
  end
  out[#out + 1] = {ns, g[1], g[2], g[3], g[4], g[5], g[6], kinds}
end
return {cursor, out, big}
"""


@dataclass
class Step:
    """What one step found on one node: per namespace (keys, bytes, TTL bucket counts,
    {type: n}) and the keys bigger than the threshold it was given."""

    node: str
    cursor: str
    groups: list[tuple[str, list[int], dict[str, int]]] = field(default_factory=list)
    big: list[tuple[bytes, str, int, int]] = field(default_factory=list)


class Tally:
    """The figures so far; loads from and saves into a KeyspaceAnalysis row."""

    def __init__(self, row: KeyspaceAnalysis):
        self.row = row
        self.biggest = [(b["size"], b["key"], b) for b in row.biggest]
        heapq.heapify(self.biggest)

    @property
    def threshold(self) -> int:
        """Only keys bigger than this can still enter the biggest 100."""
        return self.biggest[0][0] if len(self.biggest) >= BIGGEST else 0

    def add(self, step: Step) -> None:
        for namespace, figures, kinds in step.groups:
            self._add_namespace(namespace, figures, kinds)
        for key, kind, size, pttl in step.big:
            self._add_big(step.node, key, kind, size, pttl)
        state = self.row.progress[step.node]
        state["cursor"], state["done"] = step.cursor, step.cursor == "0"

    def _add_namespace(self, namespace: str, figures: list[int], kinds: dict[str, int]) -> None:
        keys, size, *buckets = figures
        entry = self.row.namespaces.setdefault(
            namespace,
            {"keys": 0, "memory": 0, "ttl": dict.fromkeys(TTL_BUCKETS, 0), "types": {}},
        )
        entry["keys"] += keys
        entry["memory"] += size
        for bucket, n in zip(TTL_BUCKETS, buckets, strict=True):
            entry["ttl"][bucket] += n
        for kind, n in kinds.items():
            entry["types"][kind] = entry["types"].get(kind, 0) + n
            self.row.types[kind] = self.row.types.get(kind, 0) + n
        self.row.keys += keys
        self.row.memory += size
        self.row.no_ttl += buckets[0]

    def _add_big(self, node: str, key: bytes, kind: str, size: int, pttl: int) -> None:
        if size <= self.threshold and len(self.biggest) >= BIGGEST:
            return  # the threshold rose since the step ran
        item = {"key": show(key), "node": node, "type": kind, "size": size, "pttl": pttl}
        entry = (size, item["key"], item)
        if len(self.biggest) < BIGGEST:
            heapq.heappush(self.biggest, entry)
        else:
            heapq.heapreplace(self.biggest, entry)

    def save(self, **fields) -> None:
        self.row.biggest = [item for _, _, item in sorted(self.biggest, reverse=True)]
        for name, value in fields.items():
            setattr(self.row, name, value)
        self.row.save()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def step_in_redis(
    client, node: str, cursor: str, count: int, threshold: int, budget_us: int = 0
) -> Step:
    """One step inside Redis, bounded by `budget_us` of the node's time (plus one SCAN
    chunk of `count`); the tallies come back. Raises ResponseError where EVAL is refused
    (the caller then pipelines the same step)."""
    # EVALSHA: the script's text goes to Redis once, not with every step.
    script = client.register_script(ANALYZE_STEP)
    next_cursor, groups, big = script(args=[cursor, count, threshold, NO_NAMESPACE, budget_us])
    step = Step(node, _text(next_cursor))
    for namespace, keys, size, *rest in groups:
        *buckets, kinds = rest
        step.groups.append(
            (
                _text(namespace),
                [int(keys), int(size), *map(int, buckets)],
                {_text(k): int(n) for k, n in zip(kinds[::2], kinds[1::2], strict=True)},
            )
        )
    step.big = [
        (big[i], _text(big[i + 1]), int(big[i + 2]), int(big[i + 3])) for i in range(0, len(big), 4)
    ]
    return step


def step_pipelined(
    client, node: str, cursor: str, count: int, threshold: int, budget_us: int = 0
) -> Step:
    """The same step from here: SCAN, then one pipeline of TYPE, PTTL, MEMORY USAGE (one
    chunk of `count` per step: `budget_us` needs Redis' clock, inside a script)."""
    next_cursor, keys = client.scan(int(cursor), count=count)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
        pipe.memory_usage(key)
    answers = pipe.execute(raise_on_error=False)
    step = Step(node, str(next_cursor))
    for index, key in enumerate(keys):
        kind, pttl, size = answers[3 * index : 3 * index + 3]
        kind = _text(kind) if isinstance(kind, bytes | str) else "none"
        if kind == "none":
            continue  # expired or deleted since the SCAN
        size = size if isinstance(size, int) else 0
        head, sep, _ = key.partition(b":")
        bucket = _bucket(pttl)
        buckets = [int(bucket == b) for b in TTL_BUCKETS]
        namespace = _text(head) if sep else NO_NAMESPACE
        step.groups.append((namespace, [1, size, *buckets], {kind: 1}))
        if size > threshold:
            step.big.append((key, kind, size, pttl))
    return step


def _bucket(pttl: int) -> str:
    if pttl < 0:
        return "no TTL"
    if pttl < 3600_000:
        return "< 1 h"
    if pttl < 86400_000:
        return "< 1 d"
    return "longer"


def node_steps(
    node: targets.Node, cursor: str, count: int, budget_us: int, tally: Tally
) -> Iterator[Step]:
    """The steps through one primary from `cursor` to the end of its SCAN."""
    take = step_in_redis
    while True:
        try:
            step = take(node.client, node.name, cursor, count, tally.threshold, budget_us)
        except redis.ResponseError as exc:
            if take is step_pipelined or targets.is_cluster_down(exc):
                raise
            take = step_pipelined  # scripting refused: nothing was counted yet
            continue
        yield step
        cursor = step.cursor
        if cursor == "0":
            return


def walk_node(
    node: targets.Node,
    cursor: str,
    pace: "Pace",
    tally: Tally,
    report,
    stop: threading.Event,
) -> None:
    """Step through one primary from `cursor`, handing each Step to `report` and resting
    after each so the node works on the analysis at most `duty` of the time (a thread of
    its own per primary; the tally itself is only touched by the run's thread)."""
    for step in pacing.paced(
        node_steps(node, cursor, pace.count, pace.budget_us, tally), pace.duty, stop
    ):
        report(step)
        if stop.is_set():
            return


def analysis_for_run(target: str, run: Run | None) -> KeyspaceAnalysis:
    """The analysis this run continues (its own after a lost worker, or the one of the
    run it retries), else a new one."""
    runs = [r for r in (run, run and run.retry_of) if r is not None]
    row = (
        KeyspaceAnalysis.objects.filter(target=target, run__in=runs)
        .exclude(status=KeyspaceAnalysis.COMPLETE)
        .first()
    )
    if row is None:
        return KeyspaceAnalysis.objects.create(target=target, run=run, started_at=timezone.now())
    row.run, row.status = run, KeyspaceAnalysis.RUNNING
    row.save(update_fields=["run", "status"])
    return row


class SlotsMoved(Exception):
    """The cluster's slot layout changed under the walk (seen at a checkpoint)."""


def _layout(target: str) -> tuple[list, bool]:
    """The cluster's slot layout as stored on the row (JSON lists), and whether a slot
    is migrating."""
    layout = targets.slot_layout(target)
    return json.loads(json.dumps(layout.primaries)), layout.moving


def _settled_layout(target: str) -> list | None:
    """The layout to walk a cluster under: once no slot is migrating (waiting up to
    SLOTS_SETTLE_WAIT_S), else None."""
    layout, moving = _layout(target)
    if moving:
        targets.wait_for_settled_slots(target, SLOTS_SETTLE_WAIT_S)
        layout, moving = _layout(target)
    return None if moving else layout


def _start_over(row: KeyspaceAnalysis, layout: list) -> None:
    """Forget the tallies and cursors: they were taken under another slot layout."""
    row.namespaces, row.types, row.biggest, row.progress = {}, {}, [], {}
    row.keys = row.memory = row.no_ttl = 0
    row.slot_layout = layout


@dataclass
class Pace:
    count: int
    budget_us: int
    duty: float


def analyze(
    target: str,
    *,
    run: Run | None = None,
    progress: Callable[[KeyspaceAnalysis, int], None] | None = None,
    count: int | None = None,
    duty: float | None = None,
    budget_ms: float | None = None,
) -> KeyspaceAnalysis:
    """Walk every key of every primary of `target` (the primaries in parallel) and store
    the figures. Changes nothing in Redis (so no audit event of its own: the run's start
    and end are audited). `progress` is called every few seconds with the row and the
    DBSIZE total; if it raises (a cancelled run), the row is kept as `stopped` with its
    cursors, and a later run resumes from them.

    On a cluster the walk follows slot moves as pattern invalidation does: a slot that
    migrates carries its keys to another primary, where they would be counted twice or
    not at all. So the slot layout is stored on the row and read again at every
    checkpoint and at the end; when it changed, the tallies are dropped and the new
    layout walked again from the start, once no slot is migrating (at most
    CLUSTER_PASSES times; a resumed run whose layout changed meanwhile starts over too)."""
    pace = Pace(
        count or conf.get("CACHE_ANALYZE_COUNT"),
        pacing.step_budget_us(budget_ms, "CACHE_ANALYZE_STEP_MS"),
        duty or conf.get("CACHE_ANALYZE_DUTY"),
    )
    pacing.rest_per_busy_second(pace.duty)  # a bad setting fails before the walk starts
    cluster = targets.shape(target) == addresses.CLUSTER
    targets.primaries(target)  # an unreachable target fails before a row is made
    row = analysis_for_run(target, run)
    clock = (time.perf_counter(), row.seconds)
    try:
        for number in range(1, (CLUSTER_PASSES if cluster else 1) + 1):
            layout = _settled_layout(target) if cluster else []
            if layout is None:
                continue  # a migration that does not end: this pass is lost
            if layout != row.slot_layout:
                _start_over(row, layout)
            row.passes = number
            if _walk_once(target, row, pace, progress, clock, follow=cluster):
                return row
    except BaseException:
        if row.status == KeyspaceAnalysis.RUNNING:  # failed between passes
            row.status = KeyspaceAnalysis.STOPPED
            row.save(update_fields=["status"])
        raise
    row.status = KeyspaceAnalysis.STOPPED
    row.save()
    raise targets.TargetUnavailable(
        f"The slots of cluster {target} were still moving after {CLUSTER_PASSES} passes: "
        "run the analysis again once the resharding has finished."
    )


def _walk_once(target, row, pace: Pace, progress, clock, follow: bool) -> bool:
    """One pass over every primary from the row's cursors. True when it completed the
    row; False when the cluster's slots moved under it (the tallies are not exact)."""
    started, spent = clock
    try:
        primaries = targets.primaries(target)
        total = sum(int(node.client.dbsize()) for node in primaries)
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    for node in primaries:
        row.progress.setdefault(node.name, {"cursor": "0", "done": False})
    tally = Tally(row)
    last_checkpoint = time.perf_counter()

    def on_steps(steps: list[Step]) -> None:
        nonlocal last_checkpoint
        for step in steps:
            tally.add(step)
        if time.perf_counter() - last_checkpoint >= CHECKPOINT_EVERY_S:
            last_checkpoint = time.perf_counter()
            tally.save(seconds=spent + last_checkpoint - started)
            if progress:
                progress(row, total)
            if follow and _layout(target) != (row.slot_layout, False):
                raise SlotsMoved

    walks = [
        partial(walk_node, node, row.progress[node.name]["cursor"], pace, tally)
        for node in primaries
        if not row.progress[node.name]["done"]
    ]
    try:
        parallel.walk_all(walks, on_steps)
        if follow and _layout(target) != (row.slot_layout, False):
            raise SlotsMoved
    except SlotsMoved:
        tally.save(seconds=spent + time.perf_counter() - started)
        return False
    except targets.REDIS_FAULTS as exc:
        tally.save(status=KeyspaceAnalysis.STOPPED, seconds=spent + time.perf_counter() - started)
        raise targets.unavailable(target, exc) from exc
    except BaseException:
        tally.save(status=KeyspaceAnalysis.STOPPED, seconds=spent + time.perf_counter() - started)
        raise
    tally.save(
        status=KeyspaceAnalysis.COMPLETE,
        finished_at=timezone.now(),
        seconds=spent + time.perf_counter() - started,
    )
    return True


@audited_action("job.start", long=True)
def start_analysis(
    target: str,
    actor: audit.Actor,
    *,
    resume: KeyspaceAnalysis | None = None,
    request_key: str | None = None,
    ip_address: str | None = None,
) -> Run:
    """Start an exact analysis of `target` as a `cache.analyze` Run, or resume a stopped
    one (a retry of its run, which continues from its cursors). Reads only."""
    targets.url(target)
    if resume is not None and resume.run is not None:
        return runner.retry(resume.run, actor, ip_address=ip_address)
    return runner.start(
        JOB_NAME, {"target": target}, actor, request_key=request_key, ip_address=ip_address
    )


class NotResumable(LookupError):
    pass


def stopped(target: str, analysis_id: int) -> KeyspaceAnalysis:
    """The stopped analysis `analysis_id` of `target`, or NotResumable saying why not."""
    row = KeyspaceAnalysis.objects.filter(target=target, pk=analysis_id).first()
    if row is None:
        raise NotResumable(f"No analysis #{analysis_id} of {target}.")
    if row.status != KeyspaceAnalysis.STOPPED or row.run is None:
        raise NotResumable(f"Analysis #{analysis_id} is {row.status}; only a stopped one resumes.")
    return row


# --- reading the results ----------------------------------------------------------


def for_run(run: Run) -> KeyspaceAnalysis | None:
    return KeyspaceAnalysis.objects.filter(run=run).first()


def latest(target: str) -> KeyspaceAnalysis | None:
    return KeyspaceAnalysis.objects.filter(target=target).first()


def history(target: str, limit: int = 20) -> list[KeyspaceAnalysis]:
    return list(KeyspaceAnalysis.objects.filter(target=target)[:limit])


def previous_complete(row: KeyspaceAnalysis) -> KeyspaceAnalysis | None:
    return (
        KeyspaceAnalysis.objects.filter(
            target=row.target, status=KeyspaceAnalysis.COMPLETE, started_at__lt=row.started_at
        )
        .order_by("-started_at")
        .first()
    )


def namespace_rows(row: KeyspaceAnalysis) -> list[dict[str, Any]]:
    """Namespaces by memory, each with its share (for the bars) and its growth since the
    previous complete analysis (None for a namespace that is new)."""
    before = previous_complete(row)
    earlier = before.namespaces if before else {}
    largest = max((ns["memory"] for ns in row.namespaces.values()), default=0) or 1
    rows = []
    for name, figures in row.namespaces.items():
        old = earlier.get(name)
        rows.append(
            {
                "namespace": name,
                **figures,
                "share": figures["memory"] / (row.memory or 1),
                "bar": round(100 * figures["memory"] / largest, 1),
                "keys_growth": figures["keys"] - old["keys"] if old else None,
                "memory_growth": figures["memory"] - old["memory"] if old else None,
            }
        )
    return sorted(rows, key=lambda r: r["memory"], reverse=True)


def summary(row: KeyspaceAnalysis) -> dict[str, Any]:
    """What the CLI prints with --json and the page shows."""
    return {
        "id": row.pk,
        "target": row.target,
        "status": row.status,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "seconds": round(row.seconds, 3),
        "keys": row.keys,
        "memory": row.memory,
        "no_ttl": row.no_ttl,
        "types": row.types,
        "namespaces": namespace_rows(row),
        "biggest": row.biggest,
        "nodes": row.progress,
        "passes": row.passes,
    }

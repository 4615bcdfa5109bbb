"""Invalidation: one key, a glob pattern, a tag, or a whole namespace (version bump).

A pattern is previewed first (a sampled estimate of keys and memory plus the first
matches), confirmed by typing, then deleted by a job that pipelines `SCAN … COUNT n`
with `UNLINK` batches: Redis never blocks on more than one small batch.
"""

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import redis
from django.conf import settings
from django.core import signing
from redis.exceptions import AskError

from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import confirmation_error

from .. import addresses, conf, targets
from ..client import Cache
from . import pacing, parallel
from .keys import show

GLOB_SPECIALS = b"[]?*\\"
MAX_PATTERN = 1000
FIRST_MATCHES = 20
MEMORY_SAMPLES = 200
APPROVAL_SALT = "cachemgr.invalidate_pattern"
APPROVAL_MAX_AGE_S = 3600
JOB_NAME = "cache.invalidate_pattern"
# How long a run on a Sentinel target waits for the promoted replica after its primary
# went away (Sentinel's down-after plus the election, with room to spare).
FAILOVER_WAIT_S = 60.0
# A cluster whose slots moved under a pattern invalidation is walked again (see
# Walk.whole_cluster): at most this many passes, each after waiting this long for a
# migration in progress to end.
CLUSTER_PASSES = 5
SLOTS_SETTLE_WAIT_S = 60.0


class BadPattern(ValueError):
    pass


class SlotsKeptMoving(Exception):
    def __init__(self, passes: int):
        super().__init__(f"slots still moving after {passes} passes")
        self.passes = passes


class ConfirmationNeeded(Exception):
    def __init__(self, errors: list[str], preview: "Preview"):
        super().__init__(" ".join(errors))
        self.errors, self.preview = errors, preview


# --- glob patterns -------------------------------------------------------------


def escape_glob(key: bytes | str) -> bytes:
    """A pattern matching exactly `key`: each of [ ] ? * \\ gets a backslash."""
    raw = key.encode() if isinstance(key, str) else key
    return b"".join(b"\\" + bytes([c]) if c in GLOB_SPECIALS else bytes([c]) for c in raw)


def _tokens(pattern: bytes) -> Iterator[tuple[str, Any]]:
    """Parse a Redis glob into ("any"|"one"|"literal"|"class", value) tokens."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == ord("*"):
            yield "any", None
        elif c == ord("?"):
            yield "one", None
        elif c == ord("\\"):
            if i + 1 >= len(pattern):
                raise BadPattern("The pattern ends with a lone backslash (escape what?).")
            i += 1
            yield "literal", pattern[i]
        elif c == ord("["):
            i, item = _class(pattern, i + 1)
            yield "class", item
        else:
            yield "literal", c
        i += 1


def _class(pattern: bytes, i: int) -> tuple[int, tuple[bool, list[tuple[int, int]]]]:
    negate = i < len(pattern) and pattern[i] == ord("^")
    i += negate
    items: list[tuple[int, int]] = []
    while i < len(pattern) and pattern[i] != ord("]"):
        c = pattern[i]
        if c == ord("\\") and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == ord("-") and pattern[i + 2] != ord("]"):
            low, high = sorted((c, pattern[i + 2]))
            items.append((low, high))
            i += 3
            continue
        items.append((c, c))
        i += 1
    if i >= len(pattern):
        raise BadPattern("The pattern has a '[' without its closing ']' (escape it as \\[).")
    return i, (negate, items)


def check_pattern(pattern: str) -> bytes:
    """The pattern as bytes, or BadPattern with a message an operator can act on."""
    if not pattern:
        raise BadPattern("Enter a pattern, e.g. user_profile:v1:*.")
    if len(pattern) > MAX_PATTERN:
        raise BadPattern(f"The pattern is longer than {MAX_PATTERN} characters.")
    if any(ch in pattern for ch in "\r\n\x00"):
        raise BadPattern("The pattern contains a line break or NUL character.")
    raw = pattern.encode()
    list(_tokens(raw))
    return raw


def matches_everything(pattern: str) -> bool:
    """True when the pattern has no literal character: `*`, `**`, `?*`, `[a-z]*`… all sweep
    (nearly) the whole keyspace, so they get the admin-only, type-the-target treatment."""
    return all(kind != "literal" for kind, _ in _tokens(check_pattern(pattern)))


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """Redis' glob semantics (stringmatchlen) as a bytes regex, to match a sample locally."""
    out = []
    for kind, value in _tokens(check_pattern(pattern)):
        if kind == "any":
            out.append(b".*")
        elif kind == "one":
            out.append(b".")
        elif kind == "literal":
            out.append(re.escape(bytes([value])))
        else:
            negate, items = value
            ranges = b"".join(
                re.escape(bytes([lo])) + (b"-" + re.escape(bytes([hi])) if hi != lo else b"")
                for lo, hi in items
            )
            out.append(b"[" + (b"^" if negate else b"") + ranges + b"]" if items else b"(?!)")
    return re.compile(b"".join(out), re.DOTALL)


# --- preview -------------------------------------------------------------------


@dataclass
class Preview:
    target: str
    pattern: str
    total_keys: int
    sampled: int
    sample_matches: int
    estimated_keys: int
    estimated_bytes: int
    exact: bool
    matches_everything: bool
    first_matches: list[str] = field(default_factory=list)

    @property
    def needs_typed_confirmation(self) -> bool:
        return self.matches_everything or self.estimated_keys > conf.get("CACHE_CONFIRM_ABOVE")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "needs_typed_confirmation": self.needs_typed_confirmation}


def preview_pattern(target: str, pattern: str, sample: int | None = None) -> Preview:
    """Estimate what `invalidate_pattern` would delete, changing nothing (the dry run).

    Reads up to `sample` keys (shared out among the primaries) from cursor 0 (hash order,
    so a uniform sample), matches them locally, scales by DBSIZE; exact when the sample
    covers the whole keyspace."""
    sample = sample or conf.get("CACHE_PREVIEW_SAMPLE")
    regex = glob_regex(pattern)
    everything = matches_everything(pattern)
    primaries = targets.primaries(target)
    try:
        found = [_sample(node.client, regex, sample // len(primaries)) for node in primaries]
        matched = [key for node_sample in found for key in node_sample.matched]
        exact = all(node_sample.complete for node_sample in found)
        first = matched[:FIRST_MATCHES]
        for node, node_sample in zip(primaries, found, strict=True):
            if len(first) >= FIRST_MATCHES or node_sample.complete:
                continue
            first += _more_matches(node.client, pattern, FIRST_MATCHES - len(first), set(first))
        sizes = [size for s in found for size in _sizes(s.client, s.matched[:MEMORY_SAMPLES])]
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    total = sum(node_sample.total for node_sample in found)
    scanned = sum(node_sample.scanned for node_sample in found)
    estimate = (
        len(matched)
        if exact
        else sum(round(len(s.matched) * s.total / max(1, s.scanned)) for s in found)
    )
    mean = sum(sizes) / len(sizes) if sizes else 0
    return Preview(
        target=target,
        pattern=pattern,
        total_keys=total,
        sampled=scanned,
        sample_matches=len(matched),
        estimated_keys=estimate,
        estimated_bytes=round(mean * estimate),
        exact=exact,
        matches_everything=everything,
        first_matches=[show(k) for k in first],
    )


@dataclass
class NodeSample:
    client: Any
    total: int
    scanned: int
    complete: bool
    matched: list[bytes]


def _sample(client, regex: re.Pattern[bytes], sample: int) -> NodeSample:
    """Up to `sample` keys of one node from cursor 0, and those `regex` matches."""
    total = int(client.dbsize())
    cursor, scanned, matched = 0, 0, []
    while True:
        cursor, keys = client.scan(cursor, count=5000)
        scanned += len(keys)
        matched.extend(k for k in keys if regex.fullmatch(k))
        if cursor == 0 or scanned >= sample:
            break
    return NodeSample(client, total, scanned, cursor == 0, matched)


def _more_matches(client, pattern: str, wanted: int, seen: set[bytes]) -> list[bytes]:
    more: list[bytes] = []
    cursor = 0
    for _ in range(20):  # bounded: a rare pattern may show fewer than 20
        cursor, keys = client.scan(cursor, match=pattern, count=5000)
        more += [k for k in keys if k not in seen][: wanted - len(more)]
        if cursor == 0 or len(more) >= wanted:
            break
    return more


def _sizes(client, keys: list[bytes]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    return [size for size in pipe.execute() if size]


def confirmation_errors(preview: Preview, confirm: str, is_admin: bool) -> list[str]:
    """Why this invalidation may not start yet (empty when it may)."""
    if preview.matches_everything:
        errors = []
        if not is_admin:
            errors.append("Only an admin may invalidate a pattern that matches every key.")
        everything = "This pattern matches every key: type the target's name to confirm."
        if error := confirmation_error(preview.target, confirm, everything):
            errors.append(error)
        return errors
    if preview.needs_typed_confirmation and (
        error := confirmation_error(
            preview.pattern,
            confirm,
            f"This deletes about {preview.estimated_keys:,} keys: "
            "type the pattern exactly to confirm.",
        )
    ):
        return [error]
    return []


def approval_for(target: str, pattern: str) -> str:
    """A signed note that the preview and confirmation passed (the job checks it)."""
    return signing.dumps({"target": target, "pattern": pattern}, salt=APPROVAL_SALT)


def approval_is_valid(approval: str, target: str, pattern: str) -> bool:
    try:
        note = signing.loads(approval, salt=APPROVAL_SALT, max_age=APPROVAL_MAX_AGE_S)
    except signing.BadSignature:
        return False
    return note == {"target": target, "pattern": pattern}


@audited_action("job.start", long=True)
def start_pattern_invalidation(
    target: str,
    pattern: str,
    actor: audit.Actor,
    *,
    confirm: str = "",
    is_admin: bool = False,
    assume_yes: bool = False,
    request_key: str | None = None,
    ip_address: str | None = None,
    dry_run: bool = False,
) -> Run | Preview:
    """Preview, enforce the typed confirmation, then start the deleting job (a Run).

    With dry_run, the preview only (what the page shows before asking to type; reads,
    so not audited). `assume_yes` (the CLI's --yes) stands in for typing. Raises
    ConfirmationNeeded, BadPattern, targets.UnknownTarget / TargetUnavailable, or
    runner.LaunchRefused. Undo: none, keys come back as the product reloads them."""
    if (
        not dry_run
        and request_key
        and (already := Run.objects.filter(request_key=request_key).first())
    ):
        return already  # a double-submitted form: the run it started the first time
    targets.url(target)
    preview = preview_pattern(target, pattern)
    if dry_run:
        return preview
    if not assume_yes and (errors := confirmation_errors(preview, confirm, is_admin)):
        # Refused before anything was launched: the denial is the whole audit record.
        audit.denied(
            actor,
            "cache.invalidate_pattern",
            f"{target}:{pattern}",
            ip_address=ip_address,
            reason=" ".join(errors),
        )
        raise ConfirmationNeeded(errors, preview)
    params = {
        "target": target,
        "pattern": pattern,
        "estimated_keys": preview.estimated_keys,
        "approval": approval_for(target, pattern),
    }
    return runner.start(JOB_NAME, params, actor, request_key=request_key, ip_address=ip_address)


# --- deleting ------------------------------------------------------------------


def scan_unlink(
    client: redis.Redis, pattern: str | bytes, count: int, batch: int
) -> Iterator[tuple[int, int]]:
    """Delete every key matching `pattern`. Each round trip is one pipeline holding the
    UNLINKs for the previous SCAN's keys and the next SCAN. Yields (matched, deleted)
    per round trip."""
    cursor, pending, scanning = 0, [], True
    while scanning or pending:
        pipe = client.pipeline(transaction=False)
        unlinks = 0
        for start in range(0, len(pending), batch):
            pipe.unlink(*pending[start : start + batch])
            unlinks += 1
        if scanning:
            pipe.scan(cursor, match=pattern, count=count)
        results = pipe.execute(raise_on_error=False)
        deleted = _unlinked(results[:unlinks])
        if scanning:
            if isinstance(results[-1], Exception):
                raise results[-1]
            cursor, pending = results[-1]
            scanning = cursor != 0
        else:
            pending = []
        yield len(pending), deleted


def _unlinked(answers: list[Any]) -> int:
    """How many keys the UNLINK answers deleted. A cluster node answers MOVED for a key of
    a slot it is still importing (not its own yet): that key is its owner's to delete, so
    it is skipped; any other error ends the walk."""
    deleted = 0
    for answer in answers:
        if isinstance(answer, AskError):  # MOVED is an AskError too
            continue
        if isinstance(answer, Exception):
            raise answer
        deleted += int(answer)
    return deleted


# One step inside Redis: SCAN chunks of COUNT n and the UNLINKs of what each found, until
# the step has held the node `budget` µs (Redis' own clock) or the SCAN ended. The keys
# never travel to the console, and the step's size follows what it costs: a pattern that
# matches little scans more buckets per step, one that matches much deletes fewer keys,
# both for about the same hold. Redis serves no one else during a script, so the budget
# is what another client's command can wait behind the walk (plus one chunk). An UNLINK
# a cluster node refuses (a key of a slot it is still importing: not its own yet; Redis
# 7.0 says "non local key", later versions MOVED / ASK) is skipped, not fatal.
SCAN_UNLINK_STEP = """
local function not_this_nodes(err)
  return err:find('non local key', 1, true) or err:find('^MOVED') or err:find('^ASK')
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local started, budget = now(), tonumber(ARGV[5])
local cursor, batch, matched, deleted = ARGV[1], tonumber(ARGV[4]), 0, 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', ARGV[3])
  local keys = reply[2]
  cursor, matched = reply[1], matched + #keys
  for i = 1, #keys, batch do
    local n = redis.pcall('UNLINK', unpack(keys, i, math.min(i + batch - 1, #keys)))
    if type(n) ~= 'table' then
      deleted = deleted + n
    elseif not not_this_nodes(n.err) then
      return redis.error_reply(n.err)
    end
  end
until cursor == '0' or now() - started >= budget
return {cursor, matched, deleted}
"""


def scan_unlink_in_steps(
    client: redis.Redis, pattern: str | bytes, count: int, batch: int, budget_us: int = 0
) -> Iterator[tuple[int, int]]:
    """Like scan_unlink, one server-side step (SCAN COUNT n chunks + their UNLINKs, for
    at most `budget_us` µs of the node's time plus one chunk) per round trip. Yields
    (matched, deleted) per step."""
    step = client.register_script(SCAN_UNLINK_STEP)
    try:
        cursor, matched, deleted = step(args=[b"0", pattern, count, batch, budget_us])
    except redis.ResponseError as exc:
        if targets.is_cluster_down(exc):
            raise
        # Scripting disabled here (ACL, managed Redis): nothing was deleted yet, so
        # start over with the client-side pipeline.
        yield from scan_unlink(client, pattern, count, batch)
        return
    while True:
        yield int(matched), int(deleted)
        if cursor in (b"0", 0, "0"):
            return
        cursor, matched, deleted = step(args=[cursor, pattern, count, batch, budget_us])


@dataclass
class NodeSteps:
    """Deleting on one primary: its steps, their pace, and what to do when its
    connection fails."""

    target: str
    node: targets.Node
    pattern: str
    scan_count: int
    batch: int
    duty: float
    deleting: Callable[..., Iterator[tuple[int, int]]]
    shape: str
    # On a cluster, one slot this primary served when the pass began: after a fault, the
    # walk goes on at whichever primary serves it then (its replica, once promoted).
    slot: int | None = None

    def run(self, report: Callable[[tuple[str, int, int]], None], stop: threading.Event) -> None:
        """Step until the node's SCAN ends, reporting (node, matched, deleted) per step and
        resting after each (pacing.paced) so the node works on this run at most `duty`
        of the time. One step at a time is in flight per node.

        A dead primary of a Sentinel service or a cluster is not the end: once the
        Sentinels name the promoted replica, or the cluster serves this primary's slots
        again (its replica promoted; the slot map read anew), the walk starts again from
        cursor 0 there: a cursor means nothing on another server (each hashes with its
        own seed), and deletions not yet replicated are redone. A cluster node refusing
        the step while a slot has no primary (CLUSTERDOWN) waits the same way."""
        node = self.node
        while True:
            steps = self.deleting(node.client, self.pattern, self.scan_count, self.batch)
            try:
                for matched, deleted in pacing.paced(steps, self.duty, stop):
                    report((node.name, matched, deleted))
                    if stop.is_set():
                        return
                return
            except (*targets.REDIS_FAULTS, redis.ResponseError) as exc:
                node = self.next_primary(exc)
                report((node.name, 0, 0))

    def next_primary(self, exc: Exception) -> targets.Node:
        """The primary to go on with after `exc`, once there is one; `exc` again when
        this target's walk cannot outlast it."""
        fault = isinstance(exc, targets.REDIS_FAULTS)
        if self.shape == addresses.SENTINEL and fault:
            return targets.wait_for_new_primary(self.target, FAILOVER_WAIT_S)
        down = fault or targets.is_cluster_down(exc)
        if self.shape == addresses.CLUSTER and self.slot is not None and down:
            return targets.wait_for_slot_owner(self.target, self.slot, FAILOVER_WAIT_S)
        raise exc


@dataclass
class Walk:
    """What one pattern invalidation walks with: the same for every primary."""

    target: str
    pattern: str
    scan_count: int
    batch: int
    mode: str
    duty: float
    budget_us: int

    def node_steps(self) -> list[NodeSteps]:
        """One NodeSteps per primary of the target as it is now, in the chosen mode."""
        deleting = (
            partial(scan_unlink_in_steps, budget_us=self.budget_us)
            if self.mode == "steps"
            else scan_unlink
        )
        shape = targets.shape(self.target)
        # A cluster node refuses a multi-key UNLINK across slots: one key per UNLINK there.
        batch = 1 if shape == addresses.CLUSTER else self.batch
        return [
            NodeSteps(
                self.target,
                node,
                self.pattern,
                self.scan_count,
                batch,
                self.duty,
                deleting,
                shape,
                targets.a_slot_of(self.target, node.name) if shape == addresses.CLUSTER else None,
            )
            for node in targets.primaries(self.target)
        ]

    def every_primary(self, on_steps: Callable[[list[tuple[str, int, int]]], None]) -> None:
        """Walk every primary once, in parallel."""
        parallel.walk_all([each.run for each in self.node_steps()], on_steps)

    def whole_cluster(
        self, on_steps: Callable[[list[tuple[str, int, int]]], None], on_pass: Callable
    ) -> None:
        """Walk every primary of a cluster, and again while slots moved under the walk.

        A slot migrated midway carries its keys to another primary, perhaps one whose
        walk is past them or over: they would be missed. So the slot layout is read
        before and after each pass; a pass is conclusive when the layout stayed the same
        and no slot was migrating (then every key that matched stayed on a node that was
        walked whole). Otherwise, once the migration settles, the new layout is walked
        again (deleting what is left is cheap: the matching keys are mostly gone).
        SlotsKeptMoving after CLUSTER_PASSES passes without a conclusive one."""
        for number in range(1, CLUSTER_PASSES + 1):
            on_pass(number)
            before = targets.slot_layout(self.target)
            self.every_primary(on_steps)
            after = targets.slot_layout(self.target)
            if after == before and not after.moving:
                return
            targets.wait_for_settled_slots(self.target, SLOTS_SETTLE_WAIT_S)
        raise SlotsKeptMoving(CLUSTER_PASSES)


@audited_action("cache.invalidate_pattern")
def invalidate_pattern(
    target: str,
    pattern: str,
    actor: audit.Actor,
    *,
    run=None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    scan_count: int | None = None,
    batch: int | None = None,
    mode: str | None = None,
    duty: float | None = None,
    budget_ms: float | None = None,
) -> dict[str, Any]:
    """UNLINK every key of `target` matching the glob `pattern`; returns the figures.

    Every primary (one, or each of a cluster's) is walked in parallel, each in bounded
    steps: `mode` "steps" (the default, CACHE_INVALIDATE_MODE) runs each step server-side,
    SCAN chunks of `scan_count` and their UNLINKs until the step has held the node
    `budget_ms` (CACHE_INVALIDATE_STEP_MS); "pipeline" pipelines SCAN and UNLINK from here
    (for a Redis where EVAL is disabled; one COUNT-sized step at a time). After each step
    the node rests, so it works on the run at most `duty` of the time
    (CACHE_INVALIDATE_DUTY). On a Sentinel target the run follows a failover to the
    promoted replica; on a cluster it walks again where slots moved under it.

    Keys are gone for good: they come back as the product reloads them (or a warmer).
    If Redis goes away midway, it raises TargetUnavailable naming how many were deleted,
    and the audit event (outcome failed) carries the same figures."""
    check_pattern(pattern)
    walk = Walk(
        target,
        pattern,
        scan_count or conf.get("CACHE_SCAN_COUNT"),
        batch or conf.get("CACHE_UNLINK_BATCH"),
        mode or conf.get("CACHE_INVALIDATE_MODE"),
        duty or conf.get("CACHE_INVALIDATE_DUTY"),
        pacing.step_budget_us(budget_ms, "CACHE_INVALIDATE_STEP_MS"),
    )
    pacing.rest_per_busy_second(walk.duty)  # a bad setting fails before anything is deleted
    with audit.record(
        actor, "cache.invalidate_pattern", f"{target}:{pattern}", run=run, pattern=pattern
    ) as event:
        figures = event.params
        figures.update(
            target=target,
            matched=0,
            deleted=0,
            rounds=0,
            scan_count=walk.scan_count,
            mode=walk.mode,
            duty=walk.duty,
            step_ms=walk.budget_us / 1000,
        )
        figures["nodes"] = {node.name: 0 for node in targets.primaries(target)}
        started = time.perf_counter()

        def on_steps(done: list[tuple[str, int, int]]) -> None:
            for node, matched, deleted in done:
                figures["matched"] += matched
                figures["deleted"] += deleted
                figures["nodes"][node] = figures["nodes"].get(node, 0) + deleted
            figures["rounds"] += len(done)
            figures["seconds"] = round(time.perf_counter() - started, 3)
            figures["rate"] = round(figures["deleted"] / max(figures["seconds"], 1e-6))
            if progress:
                progress(figures)

        try:
            if targets.shape(target) == addresses.CLUSTER:
                walk.whole_cluster(on_steps, on_pass=lambda n: figures.update(passes=n))
            else:
                walk.every_primary(on_steps)
        except SlotsKeptMoving as exc:
            raise targets.TargetUnavailable(
                f"The slots of cluster {target} were still moving after {exc.passes} passes "
                f"({figures['deleted']:,} keys deleted): run it again once the resharding "
                "has finished."
            ) from exc
        except (*targets.REDIS_FAULTS, targets.TargetUnavailable) as exc:
            raise targets.TargetUnavailable(
                f"Redis target {target} went away after {figures['deleted']:,} keys were "
                f"deleted: {type(exc).__name__}: {exc}"
            ) from exc
        figures["seconds"] = round(time.perf_counter() - started, 3)
        figures["rate"] = round(figures["deleted"] / max(figures["seconds"], 1e-6))
    return {k: v for k, v in figures.items() if k != "pattern"} | {"pattern": pattern}


@audited_action("cache.invalidate_key")
def invalidate_key(
    target: str, key: bytes | str, actor: audit.Actor, ip_address: str | None = None
) -> int:
    """UNLINK exactly one key (its name is never read as a pattern). 1 if it existed.
    Undone by the product reloading it."""
    raw = key.encode() if isinstance(key, str) else key
    client = targets.connect(target)
    with audit.record(
        actor, "cache.invalidate_key", f"{target}:{show(raw)}", ip_address=ip_address
    ) as event:
        try:
            deleted = int(client.unlink(raw))
        except targets.REDIS_FAULTS as exc:
            raise targets.unavailable(target, exc) from exc
        event.params.update(key=show(raw), deleted=deleted)
    return deleted


@audited_action("cache.invalidate_tag")
def invalidate_tag(target: str, tag: str, actor: audit.Actor, ip_address: str | None = None) -> int:
    """Delete every key the client stored with `tag`; returns how many existed.
    Undone by the product reloading them."""
    if not tag:
        raise BadPattern("Enter a tag.")
    cache = Cache(client=targets.connect(target))
    with audit.record(
        actor, "cache.invalidate_tag", f"{target}:tag:{tag}", ip_address=ip_address, tag=tag
    ) as event:
        try:
            deleted = cache.invalidate_tag(tag)
        except targets.REDIS_FAULTS as exc:
            raise targets.unavailable(target, exc) from exc
        event.params["deleted"] = deleted
    return deleted


@audited_action("cache.bump_namespace")
def bump_namespace(
    target: str, namespace: str, actor: audit.Actor, ip_address: str | None = None
) -> dict[str, int]:
    """Invalidate a whole namespace in O(1): its version goes up, so `ns:vN:*` keys are no
    longer read (they expire by their TTL). Undo: set `__cachemgr__:ver:<ns>` back to the
    old version while the old keys still live (the audit event records it)."""
    if not namespace or ":" in namespace:
        raise BadPattern("A namespace is a name without ':' (e.g. user_profile).")
    cache = Cache(client=targets.connect(target), version_cache_s=0)
    with audit.record(
        actor, "cache.bump_namespace", f"{target}:{namespace}", ip_address=ip_address
    ) as event:
        try:
            old = cache.version(namespace)
            new = cache.bump_namespace(namespace)
        except targets.REDIS_FAULTS as exc:
            raise targets.unavailable(target, exc) from exc
        event.params.update(namespace=namespace, old_version=old, new_version=new)
    return {"old_version": old, "new_version": new}


@audited_action("cache.restore_namespace")
def restore_namespace_version(
    target: str, namespace: str, version: int, actor: audit.Actor, ip_address: str | None = None
) -> dict[str, int]:
    """Undo a bump: readers go back to the keys of `version` (those not expired yet).
    Undo: bump again."""
    if not namespace or ":" in namespace:
        raise BadPattern("A namespace is a name without ':' (e.g. user_profile).")
    cache = Cache(client=targets.connect(target), version_cache_s=0)
    with audit.record(
        actor, "cache.restore_namespace", f"{target}:{namespace}", ip_address=ip_address
    ) as event:
        try:
            current = cache.version(namespace)
            cache.restore_version(namespace, version)
        except targets.REDIS_FAULTS as exc:
            raise targets.unavailable(target, exc) from exc
        event.params.update(namespace=namespace, from_version=current, to_version=version)
    return {"from_version": current, "to_version": int(version)}


def first_submission(request_key: str) -> bool:
    """True the first time a form's one-time key is seen (a double submit gets False)."""
    if not request_key:
        return True
    broker = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
    try:
        key = f"{settings.KEY_PREFIX}cachemgr:request:{request_key}"
        return bool(broker.set(key, 1, nx=True, ex=24 * 3600))
    except targets.REDIS_FAULTS:
        return True  # no broker: better a rare duplicate than refusing every action
    finally:
        broker.close()

"""PostgreSQL: replay captured writes into the other table, and catch up.

Tables with a primary key replay set-based (see templates.keyed_replay_statements):
rounds of up to `replay_batch` changes, each one transaction of a few statements
served by the key's index. A table without one replays row by row, each change
applied only where the copy batch covering its row image did not already see it.

`catch_up` replays outside any lock until the backlog is at most `lock_backlog`
changes; `under_lock` then takes the lock (lock_timeout, retried, catching up again
between attempts), replays what is left and runs the swap itself, and reports how
long the exclusive lock was held, so the hold depends on the bound, not the backlog.
"""

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from psycopg import errors

from ..base import StepFailed, StepReport

LOCK_ATTEMPTS = 5
ROW_ROUND = 500  # changes per transaction on the row-by-row path


def keyed(plan: dict) -> bool:
    """Whether the plan replays set-based (the table has a primary key)."""
    return "forward_set_insert" in plan["sql"]


def backlog(conn, plan: dict, direction: str) -> int:
    """Captured changes not applied yet."""
    return conn.execute(plan["sql"][f"{direction}_backlog"], {}).fetchone()[0]


def replay_round(conn, plan: dict, direction: str) -> int:
    """One transaction: apply up to `replay_batch` changes; returns how many."""
    if not keyed(plan):
        return replay_rows(conn, plan, direction, limit=ROW_ROUND)
    tpl = plan["sql"]
    limit = int(plan["options"].get("replay_batch", 5000))
    with conn.transaction():
        seqs = [row[0] for row in conn.execute(tpl[f"{direction}_round"], {"limit": limit})]
        if not seqs:
            return 0
        deletes = [f"{direction}_set_delete"] + (
            ["forward_set_delete_null"] if direction == "forward" else []
        )
        delta: dict[str, list[int]] = {}
        with round_settings(conn):
            for name in [*deletes, f"{direction}_set_insert"]:
                add_delta(delta, conn.execute(tpl[name], {"seqs": seqs}))
        conn.execute(tpl[f"{direction}_set_consume"], {"seqs": seqs})
        if direction == "forward":  # the verification adds it to the copy's fingerprints
            snapshot = conn.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
            conn.execute(
                tpl["progress_insert"],
                {
                    "n": -max(seqs),
                    "snap": snapshot,
                    "rows": sum(v[0] for v in delta.values()),
                    "fp": json.dumps(delta),
                },
            )
    return len(seqs)


def add_delta(delta: dict[str, list[int]], rows) -> None:
    for bucket, count, total in rows:
        slot = delta.setdefault(bucket, [0, 0])
        slot[0] += count
        slot[1] += int(total)


# Planner settings for a round, set for its transaction only: join the round's keys
# to the target by index probes (a nested loop, pruned to one partition per key at
# run time) rather than a hash join over a scan of the whole table, which the planner
# picks when it cannot estimate the round's size; and no JIT, whose compilation
# (about a second, triggered by the high cost estimates) would dwarf the round.
ROUND_SETTINGS = {"enable_hashjoin": "off", "enable_mergejoin": "off", "jit": "off"}


@contextmanager
def round_settings(conn):
    names = list(ROUND_SETTINGS)
    saved = conn.execute(
        "SELECT " + ", ".join("current_setting(%s)" for _ in names), names
    ).fetchone()
    set_all = "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names)
    conn.execute(set_all, [v for pair in ROUND_SETTINGS.items() for v in pair])
    try:
        yield
    finally:
        conn.execute(set_all, [v for pair in zip(names, saved, strict=True) for v in pair])


def drain(conn, plan: dict, direction: str) -> int:
    """Replay until no captured change is left; returns how many were applied."""
    applied = 0
    while True:
        done = replay_round(conn, plan, direction)
        applied += done
        if done == 0:
            return applied


def catch_up(conn, plan: dict, direction: str, report: StepReport, until: int) -> dict:
    """Replay outside any lock until at most `until` changes are pending.

    Reports the replay rate, the backlog and an ETA (from the rate the backlog
    shrinks at) as the step's progress and checkpoint. A backlog that reaches no new
    low for the plan's `catch_up_stall_s` fails the step: writes arrive faster than
    they are replayed, and waiting longer would never end."""
    started = time.monotonic()
    first = pending = lowest = backlog(conn, plan, direction)
    lowest_at = started  # when the backlog last reached a new low
    stall_s = float(plan["options"].get("catch_up_stall_s", 600))
    applied = rounds = 0
    busy = 0.0  # seconds spent applying changes: the replay rate's denominator
    while pending > until:
        report.check()
        report.fault_point("catch_up", rounds)
        round_started = time.monotonic()
        applied += replay_round(conn, plan, direction)
        busy += time.monotonic() - round_started
        rounds += 1
        pending = backlog(conn, plan, direction)
        if pending < lowest:
            lowest, lowest_at = pending, time.monotonic()
        elif time.monotonic() - lowest_at > stall_s:
            raise StepFailed(
                f"the catch-up makes no headway: {pending} writes behind, and the backlog"
                f" has not gone below {lowest} for {stall_s:g} s while replaying"
                f" {round(applied / max(busy, 1e-6))} writes/s. The table is written faster"
                " than its changes can be replayed; run the migration at a quieter time"
                " or with a higher lock backlog."
            )
        elapsed = max(time.monotonic() - started, 1e-6)
        shrink = (first - pending) / elapsed
        eta = round((pending - until) / shrink, 3) if shrink > 0 and pending > until else None
        state = {
            "backlog": pending,
            "replayed": applied,
            "replay_rate": round(applied / max(busy, 1e-6)),
            "eta_s": eta,
        }
        report.save(catch_up=state)
        report.progress(
            applied,
            applied + pending,
            f"catching up: {pending} writes behind, replaying {state['replay_rate']}/s"
            + (f", ETA {eta:.3g} s" if eta is not None else ""),
        )
    return {
        "replayed": applied,
        "rounds": rounds,
        "seconds": round(time.monotonic() - started, 3),
        "replay_rate": round(applied / busy) if busy > 0 else 0,
        "backlog_left": pending,
    }


def under_lock(
    conn, plan: dict, direction: str, report: StepReport, work: Callable[[], Any]
) -> dict:
    """Catch up, then in one transaction: lock (statements 0 and 1 of the swap or
    its rollback), replay the rest, `work()`; the lock hold is measured from the
    lock granted to the commit. A lock not granted in lock_timeout is retried
    after catching up again."""
    statements = next(s for s in plan["steps"] if s["name"] == "swap")
    statements = statements["sql" if direction == "forward" else "rollback"]
    bound = int(plan["options"].get("lock_backlog", 200))
    caught = catch_up(conn, plan, direction, report, bound)
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute(statements[0])
                conn.execute(statements[1])
                locked_at = time.monotonic()
                replayed = drain(conn, plan, direction)
                replay_ms = round((time.monotonic() - locked_at) * 1000, 1)
                result = work()
            hold_ms = round((time.monotonic() - locked_at) * 1000, 1)
            report.log(
                f"exclusive lock held {hold_ms} ms ({replayed} writes replayed under it"
                f" in {replay_ms} ms)"
            )
            return {
                "caught_up": caught,
                "replayed_under_lock": replayed,
                "replay_under_lock_ms": replay_ms,
                "lock_hold_ms": hold_ms,
                "lock_attempts": attempt,
                **(result or {}),
            }
        except errors.LockNotAvailable:
            report.log(f"lock not granted within lock_timeout (attempt {attempt}); retrying")
            time.sleep(min(2.0, 0.1 * 2**attempt))
            more = catch_up(conn, plan, direction, report, bound)
            caught["replayed"] += more["replayed"]
    raise StepFailed(f"could not take the lock in {LOCK_ATTEMPTS} attempts")


# --- row by row (a table without a primary key) --------------------------------


def parse_snapshot(text: str) -> tuple[int, int, set[int]]:
    xmin, xmax, xip = text.split(":")
    return int(xmin), int(xmax), {int(x) for x in xip.split(",") if x}


def visible(xid: int, snapshot: tuple[int, int, set[int]]) -> bool:
    xmin, xmax, xip = snapshot
    if xid < xmin:
        return True
    return xid < xmax and xid not in xip


def _bound(value: Any, type_: str) -> Any:
    if value is None or isinstance(value, int):
        return value
    if type_ == "date":
        return date.fromisoformat(value)
    return datetime.fromisoformat(value)


def batch_of(plan: dict, value: Any) -> int:
    type_ = plan["batch_type"]
    for batch in plan["batches"]:
        kind, lo, hi = batch["where"], _bound(batch["lo"], type_), _bound(batch["hi"], type_)
        if value is None:
            if kind == "null":
                return batch["n"]
            continue
        if (
            kind == "not_null"
            or (kind == "below" and value < hi)
            or (kind == "range" and lo <= value < hi)
            or (kind == "from" and value >= lo)
        ):
            return batch["n"]
    raise StepFailed(f"no copy batch covers the key {value!r}")


def replay_rows(conn, plan: dict, direction: str, limit: int = ROW_ROUND) -> int:
    """Apply up to `limit` captured writes not yet applied, one by one, in one
    transaction; forward, only those the covering copy batch did not see."""
    tpl = plan["sql"]
    snapshots: dict[int, tuple] = {}
    if direction == "forward":
        snapshots = {
            n: parse_snapshot(snap)
            for n, snap, _rows, _fp in conn.execute(tpl["progress_done"], {})
            if n >= 0
        }
    with conn.transaction():
        pending = conn.execute(tpl[f"{direction}_pending"], {}).fetchall()[:limit]
        for seq, op, xid, old_key, new_key, *_ in pending:
            do_delete = op in ("U", "D")
            do_insert = op in ("U", "I")
            if direction == "forward":
                xid = int(xid)
                if do_delete:
                    do_delete = not visible(xid, snapshots[batch_of(plan, old_key)])
                if do_insert:
                    do_insert = not visible(xid, snapshots[batch_of(plan, new_key)])
            if do_delete:
                cur = conn.execute(tpl[f"{direction}_delete"], {"seq": seq})
                if cur.rowcount != 1:
                    raise StepFailed(f"replay of change {seq}: the row to remove is missing")
            if do_insert:
                conn.execute(tpl[f"{direction}_insert"], {"seq": seq})
            conn.execute(tpl[f"{direction}_mark"], {"seq": seq, "d": do_delete, "i": do_insert})
    return len(pending)

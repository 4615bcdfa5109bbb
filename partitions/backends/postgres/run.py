"""PostgreSQL: run one step of a stored plan, and undo.

Exactly-once copy: each batch is one REPEATABLE READ transaction that copies
its key range, fingerprints the rows in the same pass, and commits its own
checkpoint row (with its snapshot) in the progress table. A captured write is
replayed only where the batch that covers its row image did not already see it
(`its transaction is not visible in that batch's snapshot`), so a resumed or
concurrent copy neither loses nor doubles a row, with or without a primary key.
"""

import json
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import psycopg
from psycopg import sql

from ..base import StepFailed, StepReport
from . import replay


def exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    qualified = sql.Identifier(schema, name).as_string(conn)
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified]).fetchone()[0]


def is_swapped(conn: psycopg.Connection, plan: dict) -> bool:
    return exists(conn, plan["schema"], plan["names"]["old"])


def step_sql(plan: dict, name: str) -> dict:
    return next(s for s in plan["steps"] if s["name"] == name)


def run_step(
    conn: psycopg.Connection,
    plan: dict,
    step: str,
    report: StepReport,
    connect: Callable[[], psycopg.Connection] | None = None,
) -> dict:
    if step == "copy":
        return copy(conn, plan, report, connect)
    return {
        "create": create,
        "capture": capture,
        "index": index,
        "verify": verify,
        "swap": swap,
        "post_check": post_check,
    }[step](conn, plan, report)


def execute_all(conn: psycopg.Connection, statements: list[str]) -> None:
    with conn.transaction():
        for statement in statements:
            if not statement.startswith("--"):
                conn.execute(statement)


def create(conn, plan, report) -> dict:
    names = plan["names"]
    if exists(conn, plan["schema"], names["progress"]):
        return {"skipped": "already created"}
    statements = step_sql(plan, "create")["sql"]
    execute_all(conn, statements)
    return {"partitions": plan["estimates"]["partitions_to_create"]}


def capture(conn, plan, report) -> dict:
    result: dict[str, Any] = {"capturing_into": plan["names"]["changes"]}
    if exists(conn, plan["schema"], plan["names"]["changes"]):
        result = {"skipped": "already capturing"}
    else:
        execute_all(conn, step_sql(plan, "capture")["sql"])
    if plan.get("backfill"):  # the operator's value for NULL keys, after capture starts
        result["backfilled"] = backfill(conn, plan["backfill"], report)
    return result


def backfill(conn, backfill: dict, report: StepReport) -> int:
    filled = 0
    while True:
        report.check()
        count = conn.execute(backfill["sql"], {"value": backfill["value"]}).rowcount
        filled += count
        if count == 0:
            return filled
        report.log(f"backfilled {filled} NULL keys with {backfill['value']}")


def copy(conn, plan, report, connect: Callable[[], psycopg.Connection] | None = None) -> dict:
    """Copy the batches not yet checkpointed, up to `copy_workers` at a time, each on
    its own connection (this one and `connect()`ed ones). Each batch stays one
    transaction with its fingerprints and checkpoint; the job's own calls (progress,
    checks, fault points) stay in this thread."""
    templates = step_sql(plan, "copy")["templates"]
    throttle = plan["options"].get("throttle_ms", 0) / 1000
    done = {row[0] for row in conn.execute(plan["sql"]["progress_done"], {}) if row[0] >= 0}
    total = len(plan["batches"])
    width = max(1, int(plan["options"].get("copy_workers", 1)))
    pending = iter(spread([b for b in plan["batches"] if b["n"] not in done], width))
    lanes: queue.SimpleQueue = queue.SimpleQueue()
    extra = [connect() for _ in range(width - 1)] if connect else []
    for lane in [conn, *extra]:
        lanes.put(lane)

    def copy_on_a_lane(batch: dict) -> int:
        lane = lanes.get()
        try:
            copied = copy_batch(lane, plan, templates[batch["where"]], batch)
            if throttle:
                time.sleep(throttle)
            return copied
        finally:
            lanes.put(lane)

    rows_copied = 0
    started, done_before = time.monotonic(), len(done)
    in_flight: dict[Future, dict] = {}
    pool = ThreadPoolExecutor(max_workers=1 + len(extra), thread_name_prefix="copy")

    def submit_next() -> bool:
        batch = next(pending, None)
        if batch is None:
            return False
        report.check()
        report.fault_point("copy", batch["n"])
        in_flight[pool.submit(copy_on_a_lane, batch)] = batch
        return True

    try:
        while len(in_flight) < 1 + len(extra) and submit_next():
            pass
        while in_flight:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                batch = in_flight.pop(future)
                rows_copied += future.result()
                done.add(batch["n"])
                elapsed = time.monotonic() - started
                # to the ms: a fast copy's ETA is small, never a false 0 while batches remain
                eta = round(elapsed / (len(done) - done_before) * (total - len(done)), 3)
                report.progress(
                    len(done), total, f"copied batch {batch['n'] + 1} of {total}, ETA {eta:.3g} s"
                )
                report.save(
                    batches_done=len(done),
                    rows_per_s=round(rows_copied / max(elapsed, 1e-6)),
                    eta_s=eta,
                )
                submit_next()
    finally:
        pool.shutdown(wait=True)
        for lane in extra:
            lane.close()
    make_durable(conn)
    return {"batches": total, "rows_copied_this_attempt": rows_copied, "workers": width}


def make_durable(conn) -> None:
    """Wait until every batch committed so far is flushed: the batches commit without
    waiting (COPY_SETTINGS), and the step is about to be recorded done in the console's
    database. A transaction that takes an id commits synchronously (the session's
    default), which flushes the WAL up to its commit record, so every earlier one too."""
    conn.execute("SELECT pg_current_xact_id()")


def spread(batches: list[dict], width: int) -> list[dict]:
    """The batches in the order the lanes take them: `width` runs of neighbouring key
    ranges, interleaved, so batches copied at once are far apart in the key. Keys and
    partition keys usually grow together (ids and creation times), so lanes then fill
    different partitions instead of extending the same one page by page."""
    size = max(1, -(-len(batches) // width))
    runs = [batches[i : i + size] for i in range(0, len(batches), size)]
    return [run[i] for i in range(size) for run in runs if i < len(run)]


# For a copy batch's transaction only. work_mem: the fingerprints' CTE holds a few
# bytes per copied row (its bucket and hash), which at 4 MB spills to a temporary
# file from about 100k rows. jit: a large batch's cost estimate crosses
# jit_above_cost, and compiling (up to a second) buys nothing for one scan.
# synchronous_commit: a batch's rows and its checkpoint row commit together, so a
# server crash that loses the commit loses both (WAL replays in order), and the next
# attempt copies the batch again (resuming reads the checkpoint rows). The one thing
# outside the warehouse that trusts the batches, the copy step recorded done, is
# recorded only after make_durable(); verify also refuses a batch without checkpoint.
COPY_SETTINGS = {"work_mem": "64MB", "jit": "off", "synchronous_commit": "off"}


def copy_batch(conn, plan: dict, template: str, batch: dict) -> int:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(
            "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in COPY_SETTINGS),
            [v for pair in COPY_SETTINGS.items() for v in pair],
        )
        snapshot = conn.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
        rows = conn.execute(template, {"lo": batch["lo"], "hi": batch["hi"]}).fetchall()
        fingerprints = {bucket: [count, total] for bucket, count, total in rows}
        copied = sum(count for _, count, _ in rows)
        conn.execute(
            plan["sql"]["progress_insert"],
            {"n": batch["n"], "snap": snapshot, "rows": copied, "fp": json.dumps(fingerprints)},
        )
    return copied


def index(conn, plan, report) -> dict:
    new = sql.Identifier(plan["schema"], plan["names"]["new"]).as_string(conn)
    has = conn.execute(
        "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = %(t)s::regclass)"
        " + (SELECT count(*) FROM pg_constraint WHERE conrelid = %(t)s::regclass"
        " AND contype IN ('p', 'u', 'f'))",
        {"t": new},
    )
    statements = step_sql(plan, "index")["sql"]
    if has.fetchone()[0]:  # a resumed attempt: the index transaction already committed
        return {"skipped": "indexes already built"}
    execute_all(conn, statements)
    return {"statements": len(statements)}


# --- verification -------------------------------------------------------------


def expected_fingerprints(conn, plan: dict) -> dict[str, list[int]]:
    expected: dict[str, list[int]] = {}
    for _n, _snap, _rows, fingerprints in conn.execute(plan["sql"]["progress_done"], {}):
        for bucket, (count, total) in fingerprints.items():
            slot = expected.setdefault(bucket, [0, 0])
            slot[0] += count
            slot[1] += int(total)
    for bucket, count, total in conn.execute(plan["sql"]["replayed_delta"], {}):
        slot = expected.setdefault(bucket, [0, 0])
        slot[0] += count
        slot[1] += int(total)
    return {b: v for b, v in expected.items() if v[0] != 0 or v[1] != 0}


def compare(conn, plan: dict) -> dict:
    expected = expected_fingerprints(conn, plan)
    actual = {
        bucket: [count, int(total)]
        for bucket, count, total in conn.execute(plan["sql"]["fingerprint_new"], {})
    }
    differences = sorted(b for b in set(expected) | set(actual) if expected.get(b) != actual.get(b))
    rows = sum(v[0] for v in actual.values())
    if differences:
        shown = ", ".join(
            f"{b}: expected {expected.get(b, [0, 0])[0]} rows, found {actual.get(b, [0, 0])[0]}"
            for b in differences[:5]
        )
        raise StepFailed(
            f"verification found {len(differences)} partition ranges that differ ({shown})"
        )
    return {"ranges_checked": len(actual), "rows": rows}


def verify(conn, plan, report) -> dict:
    """Catch up to the lock bound, then compare the new table with what was copied
    and replayed into it (nothing else writes to it meanwhile)."""
    report.fault_point("verify", 0)
    checkpointed = {row[0] for row in conn.execute(plan["sql"]["progress_done"], {})}
    missing = [b["n"] for b in plan["batches"] if b["n"] not in checkpointed]
    if missing:  # a lost batch leaves no rows and no fingerprint: the comparison can't see it
        raise StepFailed(
            f"{len(missing)} copy batches have no checkpoint (batch {missing[0] + 1} first):"
            " the copy did not complete; nothing was swapped"
        )
    bound = int(plan["options"].get("lock_backlog", 200))
    caught = replay.catch_up(conn, plan, "forward", report, bound)
    result = compare(conn, plan)
    report.log(f"verified {result['rows']} rows in {result['ranges_checked']} ranges")
    return {**result, "replayed": caught["replayed"], "catch_up": caught}


# --- swap, post-check, undo ---------------------------------------------------


def swap(conn, plan, report) -> dict:
    """Catch up outside the lock, then lock, replay the last writes and swap."""
    if is_swapped(conn, plan):
        return {"skipped": "already swapped"}
    statements = step_sql(plan, "swap")["sql"]
    report.fault_point("before_swap", 0)

    def work() -> None:
        report.fault_point("swap", 0)
        for statement in statements[3:]:
            conn.execute(statement)

    result = replay.under_lock(conn, plan, "forward", report, work)
    report.save(lock_hold_ms=result["lock_hold_ms"])
    report.log(f"swapped: the original is kept as {plan['names']['old']}")
    return result


def post_check(conn, plan, report) -> dict:
    tpl = plan["sql"]
    with conn.transaction():  # one snapshot: writers keep writing meanwhile
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        new_rows = conn.execute(tpl["count_src"]).fetchone()[0]
        old_rows = conn.execute(tpl["count_old"]).fetchone()[0]
        net = conn.execute(tpl["after_net"]).fetchone()[0]
    if new_rows != old_rows + net:
        raise StepFailed(
            f"post-check: {new_rows} rows in the new table, expected {old_rows} + {net}"
        )
    for view in plan["views"]:
        conn.execute(
            sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(view["schema"], view["name"]))
        )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(plan["schema"], plan["table"])))
    return {
        "rows": new_rows,
        "views_answer": len(plan["views"]),
        "foreign_keys_validated": validate_foreign_keys(conn, plan),
    }


def validate_foreign_keys(conn, plan: dict) -> int:
    """Inbound foreign keys re-created NOT VALID inside the swap (or its rollback):
    VALIDATE scans the referencing rows without blocking writes to either table."""
    statements = plan["sql"].get("validate_foreign_keys", [])
    for statement in statements:
        conn.execute(statement)
    return len(statements)


def checksum(conn, plan: dict, which: str) -> tuple[int, int]:
    name = {"src": plan["table"], "old": plan["names"]["old"], "new": plan["names"]["new"]}[which]
    count, total = conn.execute(plan["sql"]["checksum"][name]).fetchone()
    return count, int(total)


def undo(conn, plan: dict, swapped: bool, report: StepReport) -> dict:
    """Swap back (catching up on the writes made since the swap outside the lock,
    locking only for the last ones) or drop the half-built table; either way the
    original table ends up serving, as it was."""
    tpl = plan["sql"]
    result: dict[str, Any] = {"swapped_back": False}
    if swapped:
        result.update(swap_back(conn, plan, report))
    with conn.transaction():
        for statement in tpl["drop_capture"]:
            conn.execute(statement)
        conn.execute(tpl["drop_after"])
        conn.execute(tpl["drop_progress"])
        conn.execute(tpl["drop_new"])
        for statement in tpl["drop_functions"]:
            conn.execute(statement)
    report.log("rolled back: the original table serves, the partitioned copy is dropped")
    return result


def swap_back(conn, plan: dict, report: StepReport) -> dict:
    statements = step_sql(plan, "swap")["rollback"]
    checked: dict[str, Any] = {}
    caught: dict[str, Any] = {"replayed": 0}
    if replay.keyed(plan):  # catch up, then check what is settled, all outside the lock
        bound = int(plan["options"].get("lock_backlog", 200))
        caught = replay.catch_up(conn, plan, "back", report, bound)
        checked = settled_equal(conn, plan)

    def work() -> None:
        for statement in statements[3:]:
            conn.execute(statement)

    done = replay.under_lock(conn, plan, "back", report, work)
    validated = validate_foreign_keys(conn, plan)
    result = {
        "swapped_back": True,
        "lock_hold_ms": done["lock_hold_ms"],
        "lock_attempts": done["lock_attempts"],
        "replayed_under_lock": done["replayed_under_lock"],
        "replay_under_lock_ms": done["replay_under_lock_ms"],
        "replayed_since_swap": caught["replayed"]
        + done["caught_up"]["replayed"]
        + done["replayed_under_lock"],
        "catch_up": caught,
        "foreign_keys_validated": validated,
        **checked,
    }
    if not replay.keyed(plan):  # no key to leave pending rows out by: compare it all
        restored, built = checksum(conn, plan, "src"), checksum(conn, plan, "new")
        result["restored_rows"] = restored[0]
        result["identical_to_partitioned"] = restored == built
        if restored != built:
            raise StepFailed(
                "swap back done, but the restored table differs from the partitioned one;"
                f" both kept ({plan['table']} and {plan['names']['new']})"
            )
    return result


def settled_equal(conn, plan: dict) -> dict:
    """Before swapping back: in one snapshot, the original and the partitioned table
    hold the same rows for every key no pending change names (refuse otherwise,
    with nothing changed: the partitioned table keeps serving)."""
    tpl = plan["sql"]["settled_checksum"]
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        serving = conn.execute(tpl[plan["table"]]).fetchone()
        original = conn.execute(tpl[plan["names"]["old"]]).fetchone()
    if serving != original:
        raise StepFailed(
            f"before swapping back: the original has {original[0]} settled rows, the"
            f" partitioned table {serving[0]} (or their checksums differ); nothing was"
            " changed, both kept"
        )
    return {"restored_rows_checked": original[0], "identical_to_partitioned": True}


def drop_original(conn, plan: dict) -> None:
    """After success: drop the kept original and the capture of later writes."""
    tpl = plan["sql"]
    with conn.transaction():
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(plan["names"]["trigger"]),
                sql.Identifier(plan["schema"], plan["table"]),
            )
        )
        conn.execute(tpl["drop_after"])
        conn.execute(tpl["drop_progress"])
        for statement in tpl["drop_capture"][2:]:  # the change table uses the original's row type
            conn.execute(statement)
        conn.execute(tpl["drop_old"])
        for statement in tpl["drop_functions"]:
            conn.execute(statement)

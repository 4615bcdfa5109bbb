"""PostgreSQL: run one step of a stored plan, and undo.

Exactly-once copy: each batch is one REPEATABLE READ transaction that copies
its key range, fingerprints the rows in the same pass, and commits its own
checkpoint row (with its snapshot) in the progress table. A captured write is
replayed only where the batch that covers its row image did not already see it
(`its transaction is not visible in that batch's snapshot`), so a resumed or
concurrent copy neither loses nor doubles a row, with or without a primary key.
"""

import json
import time
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import errors, sql

from ..base import StepFailed, StepReport

SWAP_ATTEMPTS = 5


def exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    qualified = sql.Identifier(schema, name).as_string(conn)
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified]).fetchone()[0]


def is_swapped(conn: psycopg.Connection, plan: dict) -> bool:
    return exists(conn, plan["schema"], plan["names"]["old"])


def step_sql(plan: dict, name: str) -> dict:
    return next(s for s in plan["steps"] if s["name"] == name)


def run_step(conn: psycopg.Connection, plan: dict, step: str, report: StepReport) -> dict:
    return {
        "create": create,
        "capture": capture,
        "copy": copy,
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
    return {"partitions": len(plan["partitions"]) + 1}


def capture(conn, plan, report) -> dict:
    if exists(conn, plan["schema"], plan["names"]["changes"]):
        return {"skipped": "already capturing"}
    execute_all(conn, step_sql(plan, "capture")["sql"])
    return {"capturing_into": plan["names"]["changes"]}


def copy(conn, plan, report) -> dict:
    templates = step_sql(plan, "copy")["templates"]
    throttle = plan["options"].get("throttle_ms", 0) / 1000
    done = {row[0] for row in conn.execute(plan["sql"]["progress_done"], {})}
    total = len(plan["batches"])
    rows_copied = 0
    for batch in plan["batches"]:
        if batch["n"] in done:
            continue
        report.check()
        report.fault_point("copy", batch["n"])
        rows_copied += copy_batch(conn, plan, templates[batch["where"]], batch)
        done.add(batch["n"])
        report.progress(len(done), total, f"copied batch {batch['n'] + 1} of {total}")
        report.save(batches_done=len(done))
        if throttle:
            time.sleep(throttle)
    return {"batches": total, "rows_copied_this_attempt": rows_copied}


def copy_batch(conn, plan: dict, template: str, batch: dict) -> int:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
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


# --- replay and verification -------------------------------------------------


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


def replay(conn, plan: dict, direction: str, report: StepReport | None = None) -> int:
    """Apply captured writes not yet applied; returns how many were applied."""
    tpl = plan["sql"]
    snapshots: dict[int, tuple] = {}
    if direction == "forward":
        snapshots = {
            n: parse_snapshot(snap)
            for n, snap, _rows, _fp in conn.execute(tpl["progress_done"], {})
        }
    applied = 0
    while True:
        with conn.transaction():
            pending = conn.execute(tpl[f"{direction}_pending"], {}).fetchall()
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
                applied += 1
        if report and pending:
            report.log(f"replayed {applied} captured writes")
        if len(pending) < 500:
            return applied


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
    report.fault_point("verify", 0)
    replayed = replay(conn, plan, "forward", report)
    result = compare(conn, plan)
    report.log(f"verified {result['rows']} rows in {result['ranges_checked']} ranges")
    return {**result, "replayed": replayed}


# --- swap, post-check, undo ---------------------------------------------------


def with_lock_retries(conn, report: StepReport, work) -> Any:
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with conn.transaction():
                return work()
        except errors.LockNotAvailable:
            report.log(f"lock not granted within lock_timeout (attempt {attempt}); retrying")
            time.sleep(min(5, 0.5 * 2**attempt))
    raise StepFailed(f"could not take the lock for the swap in {SWAP_ATTEMPTS} attempts")


def swap(conn, plan, report) -> dict:
    if is_swapped(conn, plan):
        return {"skipped": "already swapped"}
    statements = step_sql(plan, "swap")["sql"]
    report.fault_point("before_swap", 0)

    def work() -> dict:
        conn.execute(statements[0])
        conn.execute(statements[1])
        replayed = replay(conn, plan, "forward")
        checked = compare(conn, plan) if replayed else {}
        report.fault_point("swap", 0)
        for statement in statements[3:]:
            conn.execute(statement)
        return {"replayed_under_lock": replayed, **checked}

    result = with_lock_retries(conn, report, work)
    report.log(f"swapped: the original is kept as {plan['names']['old']}")
    return result


def post_check(conn, plan, report) -> dict:
    tpl = plan["sql"]
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
    return {"rows": new_rows, "views_answer": len(plan["views"])}


def checksum(conn, plan: dict, which: str) -> tuple[int, int]:
    name = {"src": plan["table"], "old": plan["names"]["old"], "new": plan["names"]["new"]}[which]
    count, total = conn.execute(plan["sql"]["checksum"][name]).fetchone()
    return count, int(total)


def undo(conn, plan: dict, swapped: bool, report: StepReport) -> dict:
    """Swap back (replaying writes made since the swap) or drop the half-built
    table; either way the original table ends up serving, as it was."""
    tpl = plan["sql"]
    result: dict[str, Any] = {"swapped_back": False}
    if swapped:
        statements = step_sql(plan, "swap")["rollback"]

        def work() -> int:
            conn.execute(statements[0])
            conn.execute(statements[1])
            replayed = replay(conn, plan, "back")
            for statement in statements[3:]:
                conn.execute(statement)
            return replayed

        result["replayed_since_swap"] = with_lock_retries(conn, report, work)
        result["swapped_back"] = True
        restored, built = checksum(conn, plan, "src"), checksum(conn, plan, "new")
        result["restored_rows"] = restored[0]
        result["identical_to_partitioned"] = restored == built
        if restored != built:
            raise StepFailed(
                "swap back done, but the restored table differs from the partitioned one;"
                f" both kept ({plan['table']} and {plan['names']['new']})"
            )
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

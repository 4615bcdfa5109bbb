"""BigQuery: run one step of a stored plan, and undo; every effect is read back."""

import contextlib
from typing import Any

from google.cloud import bigquery

from ..base import StepFailed, StepReport


def fingerprint(b, sql_text: str, params: dict | None = None) -> tuple[int, str]:
    count, total = b.query(sql_text, params)[0]
    return int(count), str(total)


def copy_table(b, source: str, target: str) -> None:
    config = bigquery.CopyJobConfig(write_disposition="WRITE_TRUNCATE")
    b.client.copy_table(b.ref(source), b.ref(target), job_config=config).result(timeout=600)


def run_step(b, plan: dict, step: str, report: StepReport) -> dict:
    return {
        "backup": backup,
        "create": create,
        "copy": copy,
        "verify": verify,
        "swap": swap,
        "post_check": post_check,
    }[step](b, plan, report)


def backup(b, plan, report) -> dict:
    sql = plan["sql"]
    source = fingerprint(b, sql["fingerprint_src"])
    if b.table(plan["names"]["backup"]) is None:
        copy_table(b, plan["table"], plan["names"]["backup"])
    copied = b.wait_until(lambda: b.table(plan["names"]["backup"]) is not None)
    if not copied or fingerprint(b, sql["fingerprint_backup"]) != source:
        raise StepFailed("the backup copy does not read back equal to the table")
    report.log(f"backup {plan['names']['backup']}: {source[0]} rows, checksum equal")
    return {"backup": plan["names"]["backup"], "rows": source[0]}


def create(b, plan, report) -> dict:
    if b.table(plan["names"]["new"]) is None:
        b.query(plan["sql"]["create"])
    if not b.wait_until(lambda: b.table(plan["names"]["new"]) is not None):
        raise StepFailed("CREATE TABLE reported success, but the table does not read back")
    new, src = b.table(plan["names"]["new"]), b.table(plan["table"])
    if [(f.name, f.field_type) for f in new.schema] != [(f.name, f.field_type) for f in src.schema]:
        raise StepFailed("the new table's columns do not read back equal to the original's")
    tp = new.time_partitioning
    detail = {
        "partitioning_read_back": f"{tp.type_} on {tp.field}" if tp else None,
        "clustering_read_back": new.clustering_fields,
    }
    if tp is None:
        raise StepFailed("the new table reads back without time partitioning")
    if tp.field and tp.field != plan["key"]:
        raise StepFailed(f"the new table reads back partitioned on {tp.field}, not {plan['key']}")
    if not tp.field or new.clustering_fields is None and plan["options"]["clustering"]:
        report.log("partition column or clustering not reported back by this BigQuery endpoint")
    return detail


def params(batch: dict) -> dict[str, Any]:
    return {k: batch[k] for k in ("lo", "hi") if batch[k] is not None}


def copy(b, plan, report) -> dict:
    done = set(report.checkpoint.get("done", []))
    total = len(plan["batches"])
    for batch in plan["batches"]:
        if batch["n"] in done:
            continue
        report.check()
        report.fault_point("copy", batch["n"])
        statements = plan["sql"]["copy"][batch["where"]]
        b.query(statements["delete"], params(batch))  # a resumed range is re-done whole
        b.query(statements["insert"], params(batch))
        done.add(batch["n"])
        report.save(done=sorted(done))
        report.progress(len(done), total, f"copied range {batch['n'] + 1} of {total}")
    return {"ranges": total}


def verify(b, plan, report) -> dict:
    report.fault_point("verify", 0)
    rows = 0
    for batch in plan["batches"]:
        statements = plan["sql"]["copy"][batch["where"]]
        source = fingerprint(b, statements["fp_src"], params(batch))
        copied = fingerprint(b, statements["fp_new"], params(batch))
        if source != copied:
            raise StepFailed(
                f"verification: range {batch['n']} has {source[0]} rows in the original"
                f" and {copied[0]} in the copy (or their checksums differ)"
            )
        rows += source[0]
    report.log(f"verified {rows} rows in {len(plan['batches'])} ranges")
    return {"rows": rows, "ranges_checked": len(plan["batches"])}


def swap_mode(b, plan) -> str | None:
    src = b.table(plan["table"])
    if src is None:
        return "view_pending" if b.table(plan["names"]["new"]) is not None else None
    if src.table_type == "VIEW":
        return "view"
    if b.table(plan["names"]["old"]) is not None:
        return "rename"
    return None


def swap(b, plan, report) -> dict:
    sql = plan["sql"]
    mode = swap_mode(b, plan)
    if mode is None:
        source, copied = (
            fingerprint(b, sql["fingerprint_src"]),
            fingerprint(b, sql["fingerprint_new"]),
        )
        if source != copied:
            raise StepFailed(
                "the original was written since it was copied"
                f" ({source[0]} rows now, {copied[0]} copied): not swapping"
            )
        report.fault_point("swap", 0)
        mode = try_rename(b, plan, report)
    if mode == "view_pending":
        b.query(sql["view_swap"][1])
        mode = "view"
    if mode == "view" and not b.wait_until(lambda: swap_mode(b, plan) == "view"):
        raise StepFailed("the view under the old name does not read back")
    report.log(f"swapped ({mode})")
    return {"mode": mode}


def answers(b, table: str) -> bool:
    """Whether a query can read `table` (the catalog alone is not trusted)."""
    try:
        b.query(f"SELECT COUNT(*) FROM {b.name(table)}")  # noqa: S608 - quoted name
        return True
    except Exception:
        return False


def rename_works(b, plan: dict) -> bool:
    """Try ALTER TABLE … RENAME on a scratch table and read the effect back, both
    in the catalog and by query; the real tables are renamed only if it holds."""
    probe, probed = plan["names"]["probe"], plan["names"]["probed"]
    b.query(f"CREATE TABLE {b.name(probe)} AS SELECT 1 AS x")  # noqa: S608 - quoted name
    try:
        b.query(f"ALTER TABLE {b.name(probe)} RENAME TO `{probed}`")
        return (
            b.table(probe) is None
            and b.table(probed) is not None
            and answers(b, probed)
            and not answers(b, probe)
        )
    except Exception:
        return False
    finally:
        for name in (probe, probed):  # best effort: the emulator can disagree with itself
            with contextlib.suppress(Exception):
                b.client.delete_table(b.ref(name), not_found_ok=True)


def try_rename(b, plan, report) -> str:
    sql = plan["sql"]
    if rename_works(b, plan):
        b.query(sql["rename"][0])
        if not b.wait_until(
            lambda: b.table(plan["names"]["old"]) is not None and b.table(plan["table"]) is None
        ):
            raise StepFailed("the original does not read back under its kept name")
        b.query(sql["rename"][1])
        if not b.wait_until(lambda: swap_mode(b, plan) == "rename"):
            raise StepFailed("the partitioned table does not read back under the old name")
        return "rename"
    report.log("ALTER TABLE … RENAME does not take effect here (read back): using a view")
    if fingerprint(b, sql["fingerprint_backup"]) != fingerprint(b, sql["fingerprint_src"]):
        raise StepFailed("the backup no longer equals the original: not dropping the original")
    b.query(sql["view_swap"][0])
    if not b.wait_until(lambda: b.table(plan["table"]) is None):
        raise StepFailed("DROP TABLE reported success, but the table still reads back")
    b.query(sql["view_swap"][1])
    return "view"


def post_check(b, plan, report) -> dict:
    sql = plan["sql"]
    rows = b.query(sql["count_src"])[0][0]
    expected = fingerprint(
        b, sql["fingerprint_new"] if swap_mode(b, plan) == "view" else sql["fingerprint_src"]
    )[0]
    if rows != expected:
        raise StepFailed(f"post-check: {rows} rows through the old name, expected {expected}")
    for statement in sql["views"]:
        b.query(statement)
    return {"rows": rows, "views_answer": len(sql["views"])}


def undo(b, plan: dict, swapped: bool, report: StepReport) -> dict:
    """Put the original back under its name (from the rename or the backup copy),
    read it back equal to the backup, then drop the partitioned copy and backup."""
    sql = plan["sql"]
    mode = swap_mode(b, plan) if swapped else None
    result: dict[str, Any] = {"swapped_back": bool(mode)}
    if mode == "rename":
        for statement in sql["rename_back"]:
            b.query(statement)
        if swap_mode(b, plan) is not None:
            raise StepFailed("the rename back does not read back")
    elif mode in ("view", "view_pending"):
        if mode == "view":
            b.query(sql["drop_view"])
            if not b.wait_until(lambda: b.table(plan["table"]) is None):
                raise StepFailed("the view under the old name does not go away")
        copy_table(b, plan["names"]["backup"], plan["table"])
        restored = b.wait_until(lambda: b.table(plan["table"]) is not None)
        if not restored or fingerprint(b, sql["fingerprint_src"]) != fingerprint(
            b, sql["fingerprint_backup"]
        ):
            raise StepFailed("the restored table does not read back equal to the backup")
    if b.table(plan["table"]) is None:
        raise StepFailed("the original does not read back; the backup is kept")
    result["restored_rows"] = fingerprint(b, sql["fingerprint_src"])[0]
    for statement in (sql["drop_new"], sql["drop_backup"]):
        b.query(statement)
    report.log("rolled back: the original table serves, the partitioned copy is dropped")
    return result


def drop_original(b, plan: dict) -> None:
    b.query(plan["sql"]["drop_old"])
    b.query(plan["sql"]["drop_backup"])

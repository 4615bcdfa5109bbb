"""The statements a PostgreSQL run executes with parameters: replaying captured
writes (forward into the new table, back into the original), fingerprints,
checkpoints and clean-up. Rendered once into the plan, like every other step."""

from typing import Any

from psycopg import sql

from .render import (
    NO_EQUALITY,
    bucket_expression,
    drop_capture,
    drop_functions,
    templates_fingerprint,
)
from .rules import batch_column


def run_statements(r, info, options, names, insertable) -> dict[str, Any]:
    """Statements the run uses with parameters: replay and fingerprints."""
    out: dict[str, Any] = {"fingerprint_new": templates_fingerprint(r, options, names["new"])}
    for direction, changes, target in (
        ("forward", names["changes"], names["new"]),
        ("back", names["changes_after"], names["old"]),
    ):
        c = r.ptable(changes)
        t = r.ptable(target)
        match_cols = info.primary_key or [col.name for col in info.columns]
        types = {col.name: col.type for col in info.columns}
        conds = []
        for col in match_cols:
            left = sql.SQL("x.{}").format(r.pcol(col))
            right = sql.SQL("(c.old_row).{}").format(r.pcol(col))
            if types[col].split("(")[0] in NO_EQUALITY:
                left = sql.SQL("{}::text").format(left)
                right = sql.SQL("{}::text").format(right)
            conds.append(sql.SQL("{} IS NOT DISTINCT FROM {}").format(left, right))
        out[f"{direction}_pending"] = r(
            sql.SQL(
                "SELECT seq, op, xid::text, (old_row).{b}, (new_row).{b},"
                " {ob}, {nb}, hash_record_extended(old_row, 0)::text,"
                " hash_record_extended(new_row, 0)::text"
                " FROM {c} WHERE NOT applied ORDER BY seq LIMIT 500"
            ).format(
                b=r.pcol(batch_column(info, options)),
                ob=sql.SQL(bucket_expression(r, options, row="old_row")),
                nb=sql.SQL(bucket_expression(r, options, row="new_row")),
                c=c,
            )
        )
        out[f"{direction}_delete"] = r(
            sql.SQL(
                "DELETE FROM {t} WHERE (tableoid, ctid) = (SELECT x.tableoid, x.ctid"
                " FROM {t} AS x, {c} AS c WHERE c.seq = %(seq)s AND {conds} LIMIT 1)"
            ).format(t=t, c=c, conds=sql.SQL(" AND ").join(conds))
        )
        cols = sql.SQL(", ").join(r.pcol(col) for col in insertable)
        out[f"{direction}_insert"] = r(
            sql.SQL(
                "INSERT INTO {t} ({cols}) SELECT {vals} FROM {c} AS c WHERE c.seq = %(seq)s"
            ).format(
                t=t,
                cols=cols,
                vals=sql.SQL(", ").join(
                    sql.SQL("(c.new_row).{}").format(r.pcol(col)) for col in insertable
                ),
                c=c,
            )
        )
        out[f"{direction}_mark"] = r(
            sql.SQL(
                "UPDATE {c} SET applied = true, applied_delete = %(d)s, applied_insert = %(i)s"
                " WHERE seq = %(seq)s"
            ).format(c=c)
        )
    out["replayed_delta"] = r(
        sql.SQL(
            "SELECT bucket, sum(n)::bigint, sum(h)::text FROM ("
            " SELECT {ob} AS bucket, -1 AS n, -hash_record_extended(old_row, 0)::numeric AS h"
            " FROM {c} WHERE applied_delete"
            " UNION ALL SELECT {nb}, 1, hash_record_extended(new_row, 0)::numeric"
            " FROM {c} WHERE applied_insert) d GROUP BY bucket"
        ).format(
            ob=sql.SQL(bucket_expression(r, options, row="old_row")),
            nb=sql.SQL(bucket_expression(r, options, row="new_row")),
            c=r.ptable(names["changes"]),
        )
    )
    out["drop_capture"] = drop_capture(r, info.name, names)
    out["drop_functions"] = drop_functions(r, names)
    out["drop_after"] = r(
        sql.SQL("DROP TABLE IF EXISTS {}").format(r.table(names["changes_after"]))
    )
    out["drop_progress"] = r(sql.SQL("DROP TABLE IF EXISTS {}").format(r.table(names["progress"])))
    out["drop_new"] = r(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(r.table(names["new"])))
    out["drop_old"] = r(sql.SQL("DROP TABLE IF EXISTS {}").format(r.table(names["old"])))
    out["count_src"] = r(sql.SQL("SELECT count(*) FROM {}").format(r.table(info.name)))
    out["count_old"] = r(sql.SQL("SELECT count(*) FROM {}").format(r.table(names["old"])))
    out["checksum"] = {
        name: r(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text FROM {} AS t"
            ).format(r.table(name))
        )
        for name in (info.name, names["old"], names["new"])
    }
    out["after_net"] = r(
        sql.SQL(
            "SELECT coalesce(sum(CASE op WHEN 'I' THEN 1 WHEN 'D' THEN -1 ELSE 0 END), 0) FROM {}"
        ).format(r.table(names["changes_after"]))
    )
    out["progress_insert"] = r(
        sql.SQL(
            "INSERT INTO {p} (batch, snapshot, rows, fingerprints)"
            " VALUES (%(n)s, CAST(%(snap)s AS pg_snapshot), %(rows)s, %(fp)s)"
        ).format(p=r.ptable(names["progress"]))
    )
    out["progress_done"] = r(
        sql.SQL("SELECT batch, snapshot::text, rows, fingerprints FROM {} ORDER BY batch").format(
            r.ptable(names["progress"])
        )
    )
    return out

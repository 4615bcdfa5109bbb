"""The statements a PostgreSQL run executes with parameters: replaying captured
writes (forward into the new table, back into the original), fingerprints,
checkpoints and clean-up. Rendered once into the plan, like every other step."""

from typing import Any

from psycopg import sql

from .catalog import inbound_foreign_keys
from .render import (
    LABEL,
    bucket_expression,
    bucket_label,
    bucket_raw,
    drop_capture,
    drop_functions,
    templates_fingerprint,
)
from .rules import NO_EQUALITY, PartitionKey, batch_column


def run_statements(r, info, options, names, insertable) -> dict[str, Any]:
    """Statements the run uses with parameters: replay and fingerprints."""
    key = PartitionKey.of(info, options)
    out: dict[str, Any] = {"fingerprint_new": templates_fingerprint(r, key, names["new"])}
    for direction, changes, target in (
        ("forward", names["changes"], names["new"]),
        ("back", names["changes_after"], names["old"]),
    ):
        c = r.ptable(changes)
        t = r.ptable(target)
        out[f"{direction}_backlog"] = r(
            sql.SQL("SELECT count(*) FROM {} WHERE NOT applied").format(c)
        )
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
                ob=sql.SQL(bucket_expression(r, key, row="old_row")),
                nb=sql.SQL(bucket_expression(r, key, row="new_row")),
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
                "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {vals} FROM {c} AS c"
                " WHERE c.seq = %(seq)s"
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
    if info.primary_key:
        out.update(keyed_replay_statements(r, info, options, names, insertable))
    out["replayed_delta"] = r(
        sql.SQL(
            "SELECT bucket, sum(n)::bigint, sum(h)::text FROM ("
            " SELECT {ob} AS bucket, -1 AS n, -hash_record_extended(old_row, 0)::numeric AS h"
            " FROM {c} WHERE applied_delete"
            " UNION ALL SELECT {nb}, 1, hash_record_extended(new_row, 0)::numeric"
            " FROM {c} WHERE applied_insert) d GROUP BY bucket"
        ).format(
            ob=sql.SQL(bucket_expression(r, key, row="old_row")),
            nb=sql.SQL(bucket_expression(r, key, row="new_row")),
            c=r.ptable(names["changes"]),
        )
    )
    out["validate_foreign_keys"] = [
        r(
            sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                sql.Identifier(fk["schema"], fk["table"]), sql.Identifier(fk["name"])
            )
        )
        for fk in inbound_foreign_keys(r.conn, info, options.column)
    ]
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


# --- set-based replay of a table with a primary key ---------------------------------
#
# A round takes up to `replay_batch` captured changes by their numbers and, in one
# transaction: deletes every image those changes name from the target (matched on
# the primary key with `=`, and forward also on the partition key so each match is
# one index probe in one partition; NULL partition keys apart, in the default
# partition), inserts the last image of each key (DISTINCT ON key ORDER BY change
# number DESC: last change wins), and removes the round's changes from the change
# table. Re-applying a change is harmless (its images are deleted and the last one
# put back), so no per-row snapshot test is needed: the target converges to the
# source key by key. Per key, change numbers follow commit order because the primary
# key's row locks and unique index serialise writers of one key. Forward, a row the
# copy saw in a later state than a round's may still sit there until the round that
# names that state deletes it: its insert skips the conflict (ON CONFLICT DO NOTHING).
# Back into the original, which is exactly in step, a conflict is a real one (a
# unique key the partitioned table could not enforce) and stops the rollback.


def keyed_replay_statements(r, info, options, names, insertable) -> dict[str, str]:
    key = PartitionKey.of(info, options)
    out: dict[str, str] = {}
    pk = info.primary_key
    part = options.column
    for direction, changes, target in (
        ("forward", names["changes"], names["new"]),
        ("back", names["changes_after"], names["old"]),
    ):
        c, t = r.ptable(changes), r.ptable(target)
        out[f"{direction}_round"] = r(
            sql.SQL("SELECT seq FROM {} ORDER BY seq LIMIT %(limit)s").format(c)
        )
        taken = sql.SQL(
            "ch AS (SELECT seq, op, old_row, new_row FROM {} WHERE seq = ANY(%(seqs)s))"
        )
        taken = taken.format(c)
        keys = sql.SQL(", ").join(r.pcol(k) for k in pk)

        def image_keys(row: str, with_part: bool) -> sql.Composable:
            cols = [*pk, part] if with_part else pk
            return sql.SQL(", ").join(
                sql.SQL("({}).{} AS {}").format(sql.SQL(row), r.pcol(col), r.pcol(alias))
                for col, alias in zip(cols, [*pk, "_part"][: len(cols)], strict=True)
            )

        match = sql.SQL(" AND ").join(sql.SQL("t.{k} = k.{k}").format(k=r.pcol(k)) for k in pk)
        forward = direction == "forward"
        candidates = sql.SQL(
            "k AS (SELECT {old} FROM ch WHERE op <> 'I' UNION SELECT {new} FROM ch WHERE op <> 'D')"
        ).format(old=image_keys("old_row", forward), new=image_keys("new_row", forward))
        returning = sql.SQL(
            "RETURNING {b} AS b, hash_record_extended(t, 0) AS h)"
            " SELECT {label}, -count(*), (-sum(h))::text FROM gone GROUP BY b"
        ).format(b=bucket_raw(r, key, "t"), label=bucket_label(key, LABEL))
        if forward:
            out["forward_set_delete"] = r(
                sql.SQL(
                    "WITH {taken}, {cand}, gone AS (DELETE FROM {t} AS t USING k"
                    " WHERE {match} AND t.{p} = k._part {returning}"
                ).format(
                    taken=taken,
                    cand=candidates,
                    t=t,
                    match=match,
                    p=r.pcol(part),
                    returning=returning,
                )
            )
            out["forward_set_delete_null"] = r(
                sql.SQL(
                    "WITH {taken}, {cand}, gone AS (DELETE FROM {t} AS t USING k"
                    " WHERE {match} AND t.{p} IS NULL AND k._part IS NULL {returning}"
                ).format(
                    taken=taken,
                    cand=candidates,
                    t=t,
                    match=match,
                    p=r.pcol(part),
                    returning=returning,
                )
            )
        else:
            out["back_set_delete"] = r(
                sql.SQL(
                    "WITH {taken}, {cand}, gone AS (DELETE FROM {t} AS t USING k"
                    " WHERE {match} {returning}"
                ).format(taken=taken, cand=candidates, t=t, match=match, returning=returning)
            )
        old_keys = sql.SQL(", ").join(sql.SQL("(old_row).{}").format(r.pcol(k)) for k in pk)
        new_keys = sql.SQL(", ").join(sql.SQL("(new_row).{}").format(r.pcol(k)) for k in pk)
        cols = sql.SQL(", ").join(r.pcol(col) for col in insertable)
        out[f"{direction}_set_insert"] = r(
            sql.SQL(
                "WITH {taken},"
                " ev AS (SELECT seq, {new_as}, true AS put, new_row AS img FROM ch WHERE op <> 'D'"
                " UNION ALL SELECT seq, {old_as}, false, old_row FROM ch WHERE op = 'D'"
                " OR (op = 'U' AND ROW({old_keys}) IS DISTINCT FROM ROW({new_keys}))),"
                " last AS (SELECT DISTINCT ON ({keys}) put, img FROM ev ORDER BY {keys}, seq DESC),"
                " ins AS (INSERT INTO {t} AS t ({cols}) OVERRIDING SYSTEM VALUE"
                " SELECT {vals} FROM last WHERE put {conflict}"
                " RETURNING {b} AS b, hash_record_extended(t, 0) AS h)"
                " SELECT {label}, count(*), sum(h)::text FROM ins GROUP BY b"
            ).format(
                taken=taken,
                new_as=image_keys("new_row", False),
                old_as=image_keys("old_row", False),
                old_keys=old_keys,
                new_keys=new_keys,
                keys=keys,
                t=t,
                cols=cols,
                vals=sql.SQL(", ").join(
                    sql.SQL("(img).{}").format(r.pcol(col)) for col in insertable
                ),
                b=bucket_raw(r, key, "t"),
                label=bucket_label(key, LABEL),
                conflict=sql.SQL("ON CONFLICT DO NOTHING" if forward else ""),
            )
        )
        out[f"{direction}_set_consume"] = r(
            sql.SQL("DELETE FROM {} WHERE seq = ANY(%(seqs)s)").format(c)
        )

    # Rows of the original and of the partitioned table whose keys no pending change
    # names: equal in one snapshot when every applied change was applied right.
    def row_of(prefix: str) -> sql.Composable:
        return sql.SQL("ROW({})").format(
            sql.SQL(", ").join(sql.SQL(prefix + ".{}").format(sql.Identifier(k)) for k in pk)
        )

    pending = sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {c} AS c WHERE c.op <> 'I' AND {old} = {t})"
        " AND NOT EXISTS (SELECT 1 FROM {c} AS c WHERE c.op <> 'D' AND {new} = {t})"
    ).format(
        c=r.table(names["changes_after"]),
        old=row_of("(c.old_row)"),
        new=row_of("(c.new_row)"),
        t=row_of("t"),
    )
    out["settled_checksum"] = {
        name: r(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text"
                " FROM {} AS t WHERE {}"
            ).format(r.table(name), pending)
        )
        for name in (info.name, names["old"])
    }
    return out

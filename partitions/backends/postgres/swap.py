"""The PostgreSQL swap and post-check steps of a plan: renames, sequence
ownership, dependent views and materialized views, in one short transaction,
and the same statements the other way for the swap back."""

from psycopg import sql

from .catalog import identity_columns, owned_sequences, user_triggers
from .render import drop_capture, step


def swap_statements(
    r, src: str, names: dict, views: list, sequences: list, back: bool, carried: dict
) -> list[str]:
    """Renames (and views, sequence ownership, identity positions, user triggers) of
    the swap, or of the swap back."""
    current, other = (names["new"], names["old"]) if not back else (names["old"], names["new"])
    stmts = [
        r(sql.SQL("ALTER TABLE {} RENAME TO {}").format(r.table(src), sql.Identifier(other))),
        r(sql.SQL("ALTER TABLE {} RENAME TO {}").format(r.table(current), sql.Identifier(src))),
    ]
    for column in carried["identity"]:
        # The table now serving goes on from where the other one's identity stopped.
        stmts.append(
            r(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({to}, {col}), v) FROM (SELECT"
                    " pg_sequence_last_value(pg_get_serial_sequence({frm}, {col})::regclass)"
                    " AS v) AS x WHERE v IS NOT NULL"
                ).format(
                    to=sql.Literal(r(r.table(src))),
                    frm=sql.Literal(r(r.table(other))),
                    col=sql.Literal(column),
                )
            )
        )
    for trigger in carried["triggers"]:
        name = sql.Identifier(trigger["name"])
        if back:  # the original's own trigger fires again (the new table is dropped)
            stmts.append(r(sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(r.table(src), name)))
            continue
        stmts.append(r(sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(r.table(other), name)))
        # Its definition names the table by name: that is now the partitioned table.
        stmts.append(trigger["definition"])
    for seq in sequences:
        stmts.append(
            r(
                sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
                    sql.Identifier(seq["schema"], seq["name"]),
                    sql.Identifier(r.schema, src, seq["column"]),
                )
            )
        )
    for view in views:
        name = sql.Identifier(view["schema"], view["name"])
        definition = sql.SQL(view["definition"].rstrip().rstrip(";"))
        if view.get("kind", "v") == "v":
            stmts.append(r(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(name, definition)))
            continue
        # A materialized view keeps its own rows but refreshes from the table it was
        # built on: re-create it (same name, same index definitions) on the table now
        # under the name.
        stmts.append(r(sql.SQL("DROP MATERIALIZED VIEW {}").format(name)))
        stmts.append(r(sql.SQL("CREATE MATERIALIZED VIEW {} AS {}").format(name, definition)))
        stmts.extend(view.get("indexes", []))
    return stmts


def step_swap(r, info, options, names, views) -> dict:
    src = r.table(info.name)
    seqs = owned_sequences(r.conn, info)
    carried = {
        "identity": identity_columns(r.conn, info.schema, info.name),
        "triggers": user_triggers(r.conn, info),
    }
    lock_timeout = r(
        sql.SQL("SET LOCAL lock_timeout = {}").format(
            sql.Literal(f"{int(options.lock_timeout_ms)}ms")
        )
    )
    stmts = [
        lock_timeout,
        r(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(src)),
        "-- replay the last captured writes (same statements as in verify)",
        *drop_capture(r, info.name, names)[:2],
        *swap_statements(r, info.name, names, views, seqs, back=False, carried=carried),
        r(
            sql.SQL(
                "CREATE TABLE {c} (seq bigserial PRIMARY KEY,"
                " xid xid8 NOT NULL DEFAULT pg_current_xact_id(), op char(1) NOT NULL,"
                " old_row {t}, new_row {t}, applied boolean NOT NULL DEFAULT false,"
                " applied_delete boolean, applied_insert boolean)"
            ).format(c=r.table(names["changes_after"]), t=src)
        ),
        r(
            sql.SQL(
                "CREATE TRIGGER {tg} AFTER INSERT OR UPDATE OR DELETE ON {src}"
                " FOR EACH ROW EXECUTE FUNCTION {fn}({arg})"
            ).format(
                tg=sql.Identifier(names["trigger"]),
                src=src,
                fn=r.table(names["function"]),
                arg=sql.Literal(r(r.table(names["changes_after"]))),
            )
        ),
    ]
    back = [
        lock_timeout,
        r(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(src)),
        "-- replay writes made since the swap into the original",
        r(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(names["trigger"]), src)),
        *swap_statements(r, info.name, names, views, seqs, back=True, carried=carried),
    ]
    return step(
        "swap",
        "Catch up outside the lock until at most"
        f" {options.lock_backlog} captured writes are left, then swap in one short"
        f" transaction under lock_timeout {options.lock_timeout_ms} ms (retried): replay"
        f" the last writes, rename. The original is kept as {names['old']} until you drop"
        " it; writes after the swap are captured so a rollback can carry them back (it"
        " catches up the same way and locks only for the last writes and the swap back)",
        stmts,
        back,
    )


def step_post_check(r, info, names, views) -> dict:
    stmts = [
        r(sql.SQL("SELECT count(*) FROM {}").format(r.table(info.name))),
        r(sql.SQL("SELECT count(*) FROM {}").format(r.table(names["old"]))),
    ]
    for view in views:
        stmts.append(
            r(
                sql.SQL("SELECT 1 FROM {} LIMIT 1").format(
                    sql.Identifier(view["schema"], view["name"])
                )
            )
        )
    stmts.append(r(sql.SQL("ANALYZE {}").format(r.table(info.name))))
    return step(
        "post_check",
        "Row counts again (new = original + writes since the swap); every dependent view answers",
        stmts,
        [],
    )

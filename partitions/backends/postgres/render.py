"""Render the PostgreSQL plan's steps: every statement, composed with psycopg.sql once.

Templates that take parameters at run time (batch bounds, change numbers) have
any `%` inside identifiers doubled, so psycopg reads only our placeholders.
"""

import psycopg
from psycopg import sql

from .catalog import outbound_foreign_keys, plain_indexes
from .rules import PartitionKey, batch_column

CAPTURE_BODY = """
BEGIN
  IF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO %s (op, new_row) VALUES ($1, $2)', TG_ARGV[0]) USING 'I', NEW;
  ELSIF TG_OP = 'UPDATE' THEN
    EXECUTE format('INSERT INTO %s (op, old_row, new_row) VALUES ($1, $2, $3)', TG_ARGV[0])
      USING 'U', OLD, NEW;
  ELSE
    EXECUTE format('INSERT INTO %s (op, old_row) VALUES ($1, $2)', TG_ARGV[0]) USING 'D', OLD;
  END IF;
  RETURN NULL;
END
"""

GUARD_BODY = """
BEGIN
  RAISE EXCEPTION 'TRUNCATE is refused while a partition migration runs on this table';
END
"""


class Render:
    def __init__(self, conn: psycopg.Connection, schema: str):
        self.conn, self.schema = conn, schema

    def __call__(self, composable: sql.Composable) -> str:
        return composable.as_string(self.conn)

    def ident(self, *parts: str) -> sql.Composable:
        return sql.Identifier(*parts)

    def table(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name)

    def ptable(self, name: str) -> sql.Composable:
        """A qualified name for a template that takes parameters (`%` doubled)."""
        return sql.SQL(self(sql.Identifier(self.schema, name)).replace("%", "%%"))

    def pcol(self, name: str) -> sql.Composable:
        return sql.SQL(self(sql.Identifier(name)).replace("%", "%%"))


# Verification fingerprints rows per bucket: the partition range a row falls in
# for ranges, its value for a list, the whole table for hash partitions (whose
# remainder only PostgreSQL's own hash function knows). The bucket is labelled
# after grouping (cheaper than per row).
UUID7_MOMENT = (
    "to_timestamp(('x' || substr(replace(CAST({c} AS text), '-', ''), 1, 12))::bit(48)::bigint"
    " / 1000.0)"
)


def bucket_raw(r: Render, key: PartitionKey, row: str) -> sql.Composable:
    """The bucket of a row image `row` (a record expression)."""
    column = sql.SQL("({}).{}").format(sql.SQL(row), r.pcol(key.column))
    if key.scheme == "hash":
        return sql.SQL("'all'::text")
    if key.scheme == "list":
        return column
    if key.kind == "integer":
        return sql.SQL("({w} * floor({c} / {w}::numeric))::bigint").format(
            w=sql.Literal(key.width), c=column
        )
    if key.kind == "uuid":
        column = sql.SQL(UUID7_MOMENT).format(c=column)
    return sql.SQL("date_trunc({g}, {c})").format(g=sql.Literal(key.granularity), c=column)


def bucket_label(key: PartitionKey, bucket: sql.Composable) -> sql.Composable:
    """A bucket as the text verification compares and shows ('null' for NULL keys)."""
    if key.by_time:
        return sql.SQL("coalesce(to_char({}, 'YYYY-MM-DD'), 'null')").format(bucket)
    return sql.SQL("coalesce(CAST({} AS text), 'null')").format(bucket)


LABEL = sql.SQL("b")  # the grouped bucket's name in the statements that label it


def bucket_expression(r: Render, key: PartitionKey, row: str) -> str:
    return r(bucket_label(key, bucket_raw(r, key, row)))


def step(name: str, title: str, statements: list[str], rollback: list[str], **extra) -> dict:
    return {"name": name, "title": title, "sql": statements, "rollback": rollback, **extra}


PARTITION_BY = {"range": sql.SQL("RANGE"), "hash": sql.SQL("HASH"), "list": sql.SQL("LIST")}


def step_create(r, info, options, names, parts, generated) -> dict:
    new = r.table(names["new"])
    stmts = [
        r(
            sql.SQL(
                "CREATE TABLE {new} (LIKE {src} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
                " INCLUDING IDENTITY INCLUDING GENERATED INCLUDING COMMENTS INCLUDING STORAGE)"
                " PARTITION BY {scheme} ({key})"
            ).format(
                new=new,
                src=r.table(info.name),
                scheme=PARTITION_BY[options.scheme],
                key=sql.Identifier(options.column),
            )
        )
    ]
    for part in parts:
        stmts.append(
            r(
                sql.SQL("CREATE TABLE {p} PARTITION OF {new} {bound}").format(
                    p=r.table(part["name"]), new=new, bound=partition_bound(part)
                )
            )
        )
    if options.scheme != "hash":  # a hash partition takes every row: no default
        stmts.append(
            r(
                sql.SQL("CREATE TABLE {p} PARTITION OF {new} DEFAULT").format(
                    p=r.table(names["default"]), new=new
                )
            )
        )
    for d in info.dependents:
        if d.kind == "grant":
            privilege, _, grantee = d.name.partition(" to ")
            if privilege in (
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
            ):
                role = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
                stmts.append(
                    r(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), new, role))
                )
    stmts.append(
        r(
            sql.SQL(
                "CREATE TABLE {p} (batch bigint PRIMARY KEY, snapshot pg_snapshot NOT NULL,"
                " rows bigint NOT NULL, fingerprints jsonb NOT NULL,"
                " copied_at timestamptz NOT NULL DEFAULT now())"
            ).format(p=r.table(names["progress"]))
        )
    )
    rollback = [
        r(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(new)),
        r(sql.SQL("DROP TABLE IF EXISTS {}").format(r.table(names["progress"]))),
    ]
    return step(
        "create",
        "Create the partitioned table, its partitions and grants (empty, no indexes yet)",
        stmts,
        rollback,
    )


def step_capture(r, info, names) -> dict:
    src = r.table(info.name)
    changes = r.table(names["changes"])
    fn = r.table(names["function"])
    guard = r.table(names["guard"])
    stmts = [
        r(
            sql.SQL(
                "CREATE TABLE {c} (seq bigserial PRIMARY KEY,"
                " xid xid8 NOT NULL DEFAULT pg_current_xact_id(), op char(1) NOT NULL,"
                " old_row {t}, new_row {t}, applied boolean NOT NULL DEFAULT false,"
                " applied_delete boolean, applied_insert boolean)"
            ).format(c=changes, t=src)
        ),
        r(
            sql.SQL("CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS {body}").format(
                fn=fn, body=sql.Literal(CAPTURE_BODY)
            )
        ),
        r(
            sql.SQL("CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS {body}").format(
                fn=guard, body=sql.Literal(GUARD_BODY)
            )
        ),
        r(
            sql.SQL(
                "CREATE TRIGGER {tg} AFTER INSERT OR UPDATE OR DELETE ON {src}"
                " FOR EACH ROW EXECUTE FUNCTION {fn}({arg})"
            ).format(
                tg=sql.Identifier(names["trigger"]),
                src=src,
                fn=fn,
                arg=sql.Literal(r(changes)),
            )
        ),
        r(
            sql.SQL(
                "CREATE TRIGGER {tg} BEFORE TRUNCATE ON {src} FOR EACH STATEMENT"
                " EXECUTE FUNCTION {fn}()"
            ).format(tg=sql.Identifier(names["guard"]), src=src, fn=guard)
        ),
    ]
    rollback = drop_capture(r, info.name, names)
    return step(
        "capture",
        "Capture writes that arrive during the copy (trigger into a change table)",
        stmts,
        rollback,
    )


def partition_bound(part: dict) -> sql.Composable:
    """A partition's FOR VALUES clause from its entry in the plan."""
    if "modulus" in part:
        return sql.SQL("FOR VALUES WITH (MODULUS {}, REMAINDER {})").format(
            sql.Literal(part["modulus"]), sql.Literal(part["remainder"])
        )
    if "values" in part:
        return sql.SQL("FOR VALUES IN ({})").format(
            sql.SQL(", ").join(sql.Literal(v) for v in part["values"])
        )
    return sql.SQL("FOR VALUES FROM ({}) TO ({})").format(
        sql.Literal(part["from"]), sql.Literal(part["to"])
    )


def backfill_statement(r, info, options, value: str) -> dict:
    """NULL partition keys set to the operator's value, 5,000 rows per statement
    (run after the capture starts, so the copy and the replay see the new values)."""
    column = r.pcol(options.column)
    table = r.ptable(info.name)
    return {
        "value": value,
        "sql": r(
            sql.SQL(
                "UPDATE {t} SET {c} = CAST(%(value)s AS {type}) WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM {t} WHERE {c} IS NULL LIMIT 5000))"
            ).format(t=table, c=column, type=sql.SQL(info.column(options.column).type))
        ),
    }


def drop_capture(r, table: str, names: dict) -> list[str]:
    return [
        r(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(names["trigger"]), r.table(table)
            )
        ),
        r(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(names["guard"]), r.table(table)
            )
        ),
        r(sql.SQL("DROP TABLE IF EXISTS {}").format(r.table(names["changes"]))),
    ]


def drop_functions(r, names: dict) -> list[str]:
    return [
        r(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(r.table(names["function"]))),
        r(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(r.table(names["guard"]))),
    ]


def where_clause(r: Render, column: str, kind: str, type_: str) -> sql.Composable:
    c = r.pcol(column)
    cast_lo = sql.SQL("CAST(%(lo)s AS {})").format(sql.SQL(type_))
    cast_hi = sql.SQL("CAST(%(hi)s AS {})").format(sql.SQL(type_))
    return {
        "not_null": sql.SQL("{} IS NOT NULL").format(c),
        "below": sql.SQL("{} < {}").format(c, cast_hi),
        "range": sql.SQL("{c} >= {lo} AND {c} < {hi}").format(c=c, lo=cast_lo, hi=cast_hi),
        "from": sql.SQL("{} >= {}").format(c, cast_lo),
        "null": sql.SQL("{} IS NULL").format(c),
    }[kind]


def copy_statement(r, info, options, names, insertable, kind, batch_col, batch_type) -> str:
    key = PartitionKey.of(info, options)
    cols = sql.SQL(", ").join(r.pcol(c) for c in insertable)
    return r(
        sql.SQL(
            "WITH ins AS (INSERT INTO {new} AS n ({cols}) OVERRIDING SYSTEM VALUE"
            " SELECT {cols} FROM {src} WHERE {where}"
            " RETURNING {bucket} AS b, hash_record_extended(n, 0) AS h)"
            " SELECT {label}, count(*), sum(h)::text FROM ins GROUP BY b"
        ).format(
            new=r.ptable(names["new"]),
            cols=cols,
            src=r.ptable(info.name),
            where=where_clause(r, batch_col, kind, batch_type),
            bucket=bucket_raw(r, key, "n"),
            label=bucket_label(key, LABEL),
        )
    )


def step_copy(r, info, options, names, insertable, batches) -> dict:
    batch_col = batch_column(info, options)
    batch_type = info.column(batch_col).type
    kinds = sorted({b["where"] for b in batches})
    statements = [
        copy_statement(r, info, options, names, insertable, kind, batch_col, batch_type)
        for kind in kinds
    ]
    return step(
        "copy",
        f"Copy in {len(batches)} batches by {batch_col}, up to {options.copy_workers} at once"
        " on separate connections, each its own transaction with its checkpoint; rows are"
        " fingerprinted as they are copied",
        statements,
        [r(sql.SQL("TRUNCATE {}").format(r.table(names["new"])))],
        templates={kind: s for kind, s in zip(kinds, statements, strict=True)},
    )


def step_index(r, info, options, names, pk, new_pk, nulls_apart=False) -> dict:
    """`nulls_apart`: a list partitioned table whose key allows NULL keeps its key as
    UNIQUE NULLS NOT DISTINCT (a primary key column cannot be NULL)."""
    new = r.table(names["new"])
    stmts = []
    if new_pk and nulls_apart:
        stmts.append(
            r(
                sql.SQL("ALTER TABLE {} ADD UNIQUE NULLS NOT DISTINCT ({})").format(
                    new, sql.SQL(", ").join(sql.Identifier(c) for c in new_pk)
                )
            )
        )
    elif new_pk:
        stmts.append(
            r(
                sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                    new, sql.SQL(", ").join(sql.Identifier(c) for c in new_pk)
                )
            )
        )
    elif pk:
        stmts.append(
            r(
                sql.SQL("CREATE INDEX ON {} ({})").format(
                    new, sql.SQL(", ").join(sql.Identifier(c) for c in pk)
                )
            )
        )
    for index in plain_indexes(r.conn, info):
        cols = list(index["columns"])
        if index["unique"] and options.column not in cols:
            cols.append(options.column)
        stmts.append(
            r(
                sql.SQL("CREATE {u}INDEX ON {t} USING {m} ({c})").format(
                    u=sql.SQL("UNIQUE " if index["unique"] else ""),
                    t=new,
                    m=sql.Identifier(index["method"]),
                    c=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                )
            )
        )
    for fk in outbound_foreign_keys(r.conn, info):
        stmts.append(
            r(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    new, sql.Identifier(fk["name"]), sql.SQL(fk["definition"])
                )
            )
        )
    return step(
        "index",
        "Add the primary key, indexes and foreign keys after the load (faster than before)",
        stmts,
        [],
    )


def step_verify(r, key, names) -> dict:
    return step(
        "verify",
        "Replay captured writes, then compare rows and an order-independent checksum per"
        " partition range: the source rows as copied (fingerprinted in the copy) plus the"
        " replayed changes against a read of the new table. Any difference stops the run.",
        [templates_fingerprint(r, key, names["new"])],
        [],
    )


def templates_fingerprint(r, key: PartitionKey, table: str) -> str:
    return r(
        sql.SQL(
            "SELECT {label}, c, s::text FROM (SELECT {b} AS b, count(*) AS c,"
            " sum(hash_record_extended(n, 0)) AS s FROM {t} AS n GROUP BY 1) AS x"
        ).format(label=bucket_label(key, LABEL), b=bucket_raw(r, key, "n"), t=r.ptable(table))
    )

"""PostgreSQL catalog queries: tables, partitions, columns and what depends on a table."""

TABLES = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint,
       pg_total_relation_size(c.oid), pg_get_partkeydef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'partman')
  AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname
"""

PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint,
       pg_total_relation_size(c.oid),
       greatest(s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze),
       s.n_live_tup
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE i.inhparent = %s::regclass
ORDER BY pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.relname
"""

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord
"""

VIEWS = """
SELECT DISTINCT v.oid, vn.nspname, v.relname, v.relkind, pg_get_viewdef(v.oid, true)
FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace
WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s::regclass AND v.oid <> d.refobjid
ORDER BY vn.nspname, v.relname
"""

CONSTRAINTS = """
SELECT conname, contype, pg_get_constraintdef(oid), conrelid::regclass::text,
       conrelid = %(t)s::regclass
FROM pg_constraint
WHERE (conrelid = %(t)s::regclass AND contype = 'f') OR (confrelid = %(t)s::regclass)
ORDER BY conname
"""

TRIGGERS = """
SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname
"""

GRANTS = """
SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type
FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s::regclass AND a.grantee <> c.relowner
ORDER BY 1, 2
"""

SEQUENCES = """
SELECT s.relname, sn.nspname, a.attname FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.refobjid = %s::regclass AND d.deptype = 'a' AND d.classid = 'pg_class'::regclass
"""

INDEXES = """
SELECT ic.relname, i.indisunique, am.amname, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
ORDER BY ic.relname
"""


HISTORY = """
SELECT query, calls FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ILIKE %s AND query !~* '^\\s*(CREATE|ALTER|DROP|ANALYZE|VACUUM|COPY)'
ORDER BY calls DESC LIMIT 200
"""

"""manage.py queries slow|explain|indexes|long-running|apply: the CLI twin of the Queries
pages."""

import json

from jobs import runner
from opsconsole.commands import (
    ConsoleCommand,
    add_json_argument,
    add_wait_arguments,
    bad_input,
    failed,
)
from partitions import warehouses
from partitions.warehouses import WarehouseError

from ... import advisor, apply, drops, health, longrunning, slow
from ...errors import ConfirmationMismatch
from ...explain import explain_statement


def _json(data) -> str:
    return json.dumps(data, indent=2, default=str)


class Command(ConsoleCommand):
    help = "Slow statements, EXPLAIN, index suggestions and applying one, per warehouse."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)

        def common(p):
            p.add_argument("--warehouse", default=warehouses.default_postgres())
            add_json_argument(p)

        p = sub.add_parser("slow", help="pg_stat_statements above the threshold")
        common(p)
        p.add_argument("--order", choices=slow.ORDERS, default="total")
        p.add_argument("--min-ms", type=float, default=None)
        p.add_argument("--limit", type=int, default=50)
        p.add_argument("--schema", help="only statements mentioning this schema")

        p = sub.add_parser("explain", help="EXPLAIN a statement (or a pg_stat_statements id)")
        common(p)
        p.add_argument("statement", nargs="?", default="")
        p.add_argument("--queryid", type=int)
        p.add_argument("--analyze", action="store_true")
        p.add_argument("--value", action="append", dest="values", help="sample value for $n")

        p = sub.add_parser(
            "long-running",
            help="statements seen running past QUERIES_LONG_RUNNING_MS (the advisor weighs them)",
        )
        common(p)
        p.add_argument("--sample", action="store_true", help="sample pg_stat_activity first")

        p = sub.add_parser("indexes", help="index suggestions and index health")
        common(p)
        p.add_argument("--min-ms", type=float, default=None, help="only statements this slow")
        p.add_argument("--schema", help="only statements mentioning this schema")
        p.add_argument("--min-calls", type=int, help="only statements called this often")
        p.add_argument("--min-cost", type=float, help="plans cheaper than this are left alone")
        p.add_argument("--min-saving", type=float, help="%% cost cut an index must give")
        p.add_argument("--max-indexes", type=int, help="budget: indexes in all")
        p.add_argument("--max-per-table", type=int, help="budget: indexes per table")
        p.add_argument("--max-total-mb", type=float, help="budget: total index size")
        p.add_argument("--include-table", action="append", default=[], dest="include_tables")
        p.add_argument("--exclude-table", action="append", default=[], dest="exclude_tables")

        p = sub.add_parser("drop", help="drop an unused or duplicate index as a job")
        common(p)
        p.add_argument("--schema", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--confirm", required=True, help="the index name, typed again")
        add_wait_arguments(p)

        p = sub.add_parser("apply", help="build a suggested index as a job")
        common(p)
        p.add_argument("--schema", required=True)
        p.add_argument("--table", required=True)
        p.add_argument("--columns", required=True, help="comma-separated, in index order")
        p.add_argument("--name")
        p.add_argument("--confirm", required=True, help="the index name, typed again")
        add_wait_arguments(p)

    def handle(self, *args, **opts):
        if not opts["warehouse"]:
            raise bad_input("No PostgreSQL warehouse is configured (WAREHOUSES).")
        try:
            getattr(self, f"do_{opts['action'].replace('-', '_')}")(opts)
        except ConfirmationMismatch as exc:
            raise bad_input(str(exc)) from None
        except WarehouseError as exc:
            raise failed(str(exc)) from None

    def do_slow(self, opts):
        rows = slow.slow_statements(
            opts["warehouse"],
            order=opts["order"],
            min_mean_ms=opts["min_ms"],
            limit=opts["limit"],
            containing=opts["schema"],
        )
        if opts["json"]:
            self.stdout.write(_json(rows))
            return
        for r in rows:
            self.stdout.write(
                f"{r['queryid']:>20}  calls {r['calls']:>8}  total {r['total_ms']:>10.1f} ms  "
                f"mean {r['mean_ms']:>8.1f} ms  {r['share_percent']:5.1f}%  "
                f"{' '.join(r['query'].split())[:100]}"
            )

    def do_long_running(self, opts):
        if opts["sample"]:
            longrunning.sample(opts["warehouse"])
        rows = longrunning.since_reset(opts["warehouse"])
        if opts["json"]:
            self.stdout.write(_json(rows))
            return
        for r in rows:
            self.stdout.write(
                f"{r['queryid']:>20}  runs {r['calls']:>6}  seen {r['total_ms'] / 1000:>9.1f} s  "
                f"mean {r['mean_ms'] / 1000:>7.1f} s  {' '.join(r['query'].split())[:100]}"
            )

    def do_explain(self, opts):
        statement = opts["statement"]
        if opts["queryid"] is not None:
            statement = slow.statement_text(opts["warehouse"], opts["queryid"]) or ""
        if not statement:
            raise bad_input("Give a statement or --queryid of a listed statement.")
        result = explain_statement(
            opts["warehouse"],
            statement,
            analyze=opts["analyze"],
            values=opts["values"],
            actor=self.actor,
        )
        if opts["json"]:
            data = {
                "mode": result.mode,
                "total_cost": result.total_cost,
                "flagged": [vars(n) for n in result.flagged],
                "plan": result.plan,
            }
            self.stdout.write(_json(data))
            return
        self.stdout.write(f"-- {result.mode}")
        for n in result.nodes:
            on = f" on {n.relation}" if n.relation else ""
            flags = f"  <- {'; '.join(n.flags)}" if n.flags else ""
            self.stdout.write(f"{'  ' * n.depth}{n.node_type}{on}  cost {n.total_cost:.1f}{flags}")

    def do_indexes(self, opts):
        saving = opts["min_saving"]
        advice = advisor.suggest_indexes(
            opts["warehouse"],
            min_mean_ms=opts["min_ms"],
            containing=opts["schema"],
            min_calls=opts["min_calls"],
            min_cost=opts["min_cost"],
            margin=saving / 100 if saving is not None else None,
            max_indexes=opts["max_indexes"],
            max_per_table=opts["max_per_table"],
            max_total_mb=opts["max_total_mb"],
            include_tables=tuple(opts["include_tables"]) or None,
            exclude_tables=tuple(opts["exclude_tables"]) or None,
        )
        report = health.index_health(opts["warehouse"], schema=opts["schema"])
        worth_dropping = drops.drop_suggestions(
            opts["warehouse"], schema=opts["schema"], report=report
        )
        if opts["json"]:
            data = {**advice.as_dict(), "health": report.as_dict(), "drops": worth_dropping}
            self.stdout.write(_json(data))
            return
        for note in advice.notes:
            self.stdout.write(f"note: {note}")
        for s in advice.suggestions:
            after = f"{s.cost_after:.1f}" if s.cost_after is not None else "?"
            ids = ", ".join(str(h.queryid) for h in s.helps)
            self.stdout.write(f"{s.create_statement};")
            self.stdout.write(f"    cost {s.cost_before:.1f} -> {after}; helps {ids}")
            calls = sum(h.calls for h in s.helps)
            if s.writes is not None:
                updated = ", ".join(s.writes.updated_columns) or "none"
                self.stdout.write(
                    f"    {calls} calls served; table writes {s.writes.writes_per_s}/s; "
                    f"indexed columns updated: {updated}"
                )
        if advice.suggestions:
            self.stdout.write(f"estimated workload cost saved: {advice.saved_share:.0%}")
        for s in advice.not_worth_it:
            self.stdout.write(
                f"not worth it: {s.schema}.{s.table} ({', '.join(s.columns)}): saves "
                f"{s.saved:.0f}, costs writes {s.writes.cost:.0f}"
            )
        if not advice.suggestions:
            self.stdout.write("No index suggestion.")
        for item in advice.why_not:
            self.stdout.write(f"why not {item.queryid}: {item.reason}")
        for item in worth_dropping:
            self.stdout.write(f"worth dropping: {item['schema']}.{item['name']} ({item['why']})")
        for item in report.redundant:
            self.stdout.write(
                f"redundant: {item['name']} is a {item['reason']} {item['covered_by']}"
            )
        for item in report.unused:
            self.stdout.write(f"unused: {item['schema']}.{item['name']}")
        for item in report.invalid:
            self.stdout.write(f"invalid: {item['schema']}.{item['name']}")
        for fk in report.unindexed_foreign_keys:
            self.stdout.write(
                f"foreign key without index: {fk['schema']}.{fk['table']} {fk['name']}"
            )
        for n in report.n_plus_one:
            self.stdout.write(f"possible N+1: {n['queryid']} ({n['calls']} calls)")

    def do_drop(self, opts):
        params = {k: opts[k] for k in ("warehouse", "schema", "name", "confirm")}
        try:
            run = drops.start_drop(self.actor, params)
        except runner.LaunchRefused as exc:
            raise bad_input(str(exc)) from None
        run = self.follow(run, opts)
        self.stdout.write(f"run #{run.pk} {run.status}: drop {opts['schema']}.{opts['name']}")
        if not run.is_active and run.status != "succeeded":
            raise failed(f"run #{run.pk} {run.status}: {run.error}")

    def do_apply(self, opts):
        columns = [c.strip() for c in opts["columns"].split(",") if c.strip()]
        name = opts["name"] or advisor.index_name(opts["table"], columns)
        params = {
            "warehouse": opts["warehouse"],
            "schema": opts["schema"],
            "table": opts["table"],
            "columns": ",".join(columns),
            "name": name,
            "confirm": opts["confirm"],
        }
        try:
            run = apply.start_apply(self.actor, params)
        except runner.LaunchRefused as exc:
            raise bad_input(str(exc)) from None
        run = self.follow(run, opts)
        data = {"run": run.pk, "status": run.status, "result": run.result, "error": run.error}
        if opts["json"]:
            self.stdout.write(_json(data))
        else:
            self.stdout.write(f"run #{run.pk} {run.status} {run.error or run.result or ''}")
        if not run.is_active and run.status != "succeeded":
            raise failed(f"run #{run.pk} {run.status}: {run.error}")

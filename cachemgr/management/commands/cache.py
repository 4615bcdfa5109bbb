"""The CLI twin of the cache pages: the same services, the same audit events.

    manage.py cache stats [--target main] [--json]
    manage.py cache keys 'user_profile:*' [--cursor N] [--json]
    manage.py cache invalidate --pattern 'user_profile:v1:*' [--yes] [--no-wait] [--timeout S]
    manage.py cache invalidate --key K | --tag T | --namespace NS [--yes]
    manage.py cache warm user_profile [--limit 100] [--no-wait] [--timeout S] [--json]
    manage.py cache analyze [--resume ID] [--no-wait] [--json]   exact keyspace analysis
    manage.py cache advice [--json]                              latency/memory per node
    manage.py cache local-cluster [--primaries 3]     a throwaway cluster (Ctrl-C stops it)

`--yes` stands in for the typed confirmation the pages ask for.
"""

import json
import signal

from jobs import runner
from jobs.models import Run
from opsconsole.commands import (
    ConsoleCommand,
    add_json_argument,
    add_wait_arguments,
    bad_input,
    failed,
)

from ... import registry, targets
from ...localservers import LocalCluster
from ...services import advice, analysis, invalidation, keys, stats, warming


class Command(ConsoleCommand):
    help = "Cache targets: stats, keys, invalidate, warm (see --help of each)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)

        def common(p):
            p.add_argument("--target", default=None, help="cache target (default: the first)")
            add_json_argument(p)
            return p

        common(sub.add_parser("stats", help="INFO figures, namespaces, slow log"))
        found = common(sub.add_parser("keys", help="one page of keys matching a pattern (SCAN)"))
        found.add_argument("pattern", nargs="?", default="*")
        found.add_argument("--cursor", type=int, default=0)
        found.add_argument("--page-size", type=int, default=50)
        inv = common(sub.add_parser("invalidate", help="delete a key, pattern, tag or namespace"))
        what = inv.add_mutually_exclusive_group(required=True)
        what.add_argument("--key")
        what.add_argument("--pattern")
        what.add_argument("--tag")
        what.add_argument("--namespace")
        inv.add_argument("--yes", action="store_true", help="confirm without typing")
        add_wait_arguments(inv, wait_by_default=True)
        warm = common(sub.add_parser("warm", help="run a registered warmer"))
        warm.add_argument("warmer", nargs="?", help="omit to list the warmers")
        warm.add_argument("--limit", type=int, default=None)
        add_wait_arguments(warm, wait_by_default=True)
        analyze = common(sub.add_parser("analyze", help="exact keyspace analysis (a run)"))
        analyze.add_argument("--resume", type=int, help="continue the stopped analysis ID")
        add_wait_arguments(analyze, wait_by_default=True)
        common(sub.add_parser("advice", help="latency and memory advice per node"))
        local = sub.add_parser("local-cluster", help="start a throwaway local Redis Cluster")
        local.add_argument("--primaries", type=int, default=3)

    def handle(self, *args, action, **options):
        if action == "local-cluster":
            return self.local_cluster(options["primaries"])
        target = options["target"] or targets.default()
        try:
            targets.url(target)
            getattr(self, f"do_{action}")(target, options)
        except targets.TargetUnavailable as exc:
            raise failed(str(exc)) from None
        except (
            targets.UnknownTarget,
            analysis.NotResumable,
            invalidation.BadPattern,
            registry.UnknownWarmer,
            runner.LaunchRefused,
        ) as exc:
            raise bad_input(str(exc)) from None

    # --- reading -----------------------------------------------------------------

    def do_stats(self, target: str, options) -> None:
        server = stats.server_stats(target)
        found = stats.namespaces(target)
        if found is None:  # nothing cached yet: a command may wait for the bounded sample
            stats.refresh_namespaces(target)
            found = stats.namespaces(target)
        lines = [
            f"{target} {server['url']} ({server['shape']})  Redis {server['version']}  "
            f"up {server['uptime_s']} s",
            f"hit rate {_pct(server['hit_rate'])}  ops/s {server['ops_per_sec']:.0f}  "
            f"clients {server['connected_clients']}  keys {server['keys']:,}",
            f"memory {server['used_memory']:,} B (peak {server['used_memory_peak']:,}, max "
            f"{server['maxmemory'] or 'none'}, {server['maxmemory_policy']})  "
            f"evicted {server['evicted_keys']:,}  expired {server['expired_keys']:,}",
        ]
        if len(server["nodes"]) > 1:
            lines += [
                f"  {n['node']:<22} {n['role']:<8} keys {n['keys']:>10,}  "
                f"memory {n['used_memory']:>12,} B  ops/s {n['ops_per_sec']:.0f}  "
                f"evicted {n['evicted_keys']:,}"
                for n in server["nodes"]
            ]
        lines.append(f"namespaces (sample of {found['scanned']:,} keys):")
        for row in found["namespaces"]:
            lines.append(
                f"  {row['namespace']:<24} {row['keys']:>10,} keys {row['memory']:>12,} B  "
                f"hit rate {_pct(row['hit_rate'])}"
            )
        self.emit({"server": server, "namespaces": found}, "\n".join(lines))

    def do_keys(self, target: str, options) -> None:
        invalidation.check_pattern(options["pattern"])
        page = keys.search(target, options["pattern"], options["cursor"], options["page_size"])
        lines = [f"{r['key']}\t{r['type']}\t{r['ttl']}\t{r['size']}" for r in page["keys"]]
        lines.append("(end)" if page["done"] else f"(more: --cursor {page['cursor']})")
        self.emit(page, "\n".join(lines))

    # --- changing ----------------------------------------------------------------

    def do_invalidate(self, target: str, options) -> None:
        if options["key"] is not None:
            deleted = invalidation.invalidate_key(target, options["key"], self.actor)
            return self.emit({"deleted": deleted}, f"{deleted} key deleted.")
        if options["tag"] is not None:
            deleted = invalidation.invalidate_tag(target, options["tag"], self.actor)
            return self.emit({"deleted": deleted}, f"{deleted:,} tagged keys deleted.")
        if options["namespace"] is not None:
            if not options["yes"]:
                raise bad_input("A namespace bump needs --yes (the page asks to type it).")
            versions = invalidation.bump_namespace(target, options["namespace"], self.actor)
            return self.emit(
                versions,
                f"{options['namespace']}: v{versions['old_version']} → v{versions['new_version']}.",
            )
        return self.invalidate_pattern(target, options)

    def invalidate_pattern(self, target: str, options) -> None:
        try:
            run = invalidation.start_pattern_invalidation(
                target, options["pattern"], self.actor, assume_yes=options["yes"]
            )
        except invalidation.ConfirmationNeeded as exc:
            preview = exc.preview
            if self.as_json:
                self.emit({"preview": preview.as_dict(), "started": False})
            else:
                self.stdout.write(
                    f"≈ {preview.estimated_keys:,} keys (≈ {preview.estimated_bytes:,} B) match;"
                    f" first: {', '.join(preview.first_matches[:5])}"
                )
            raise bad_input("This needs confirmation: re-run with --yes.") from None
        self.report(self.follow(run, options, progress=True), options)

    def do_warm(self, target: str, options) -> None:
        if not options["warmer"]:
            rows = [
                {"name": w.name, "namespace": w.namespace, "description": w.description}
                for w in registry.WARMERS.values()
            ]
            text = "\n".join(
                f"{r['name']:<20} {r['namespace']:<20} {r['description']}" for r in rows
            )
            return self.emit(rows, text)
        run = warming.start_warm(target, options["warmer"], self.actor, limit=options["limit"])
        self.report(self.follow(run, options, progress=True), options)

    def do_analyze(self, target: str, options) -> None:
        resume = None
        if options["resume"]:
            resume = analysis.stopped(target, options["resume"])
        run = analysis.start_analysis(target, self.actor, resume=resume)
        run = self.follow(run, options, progress=True)
        row = analysis.for_run(run)
        if run.is_active or row is None:
            return self.report(run, options)
        figures = analysis.summary(row)
        lines = [
            f"analysis #{row.pk} {row.status}: {row.keys:,} keys, {row.memory:,} B, "
            f"{row.no_ttl:,} without TTL, {row.seconds:.1f} s (run #{run.pk} {run.status})",
            "types: " + ", ".join(f"{k} {n:,}" for k, n in sorted(row.types.items())),
        ]
        lines += [
            f"  {ns['namespace']:<24} {ns['keys']:>10,} keys {ns['memory']:>14,} B  "
            f"no TTL {ns['ttl']['no TTL']:,}"
            + (f"  (+{ns['keys_growth']:,} keys)" if ns["keys_growth"] else "")
            for ns in figures["namespaces"]
        ]
        lines += [f"  biggest: {b['key']} {b['size']:,} B ({b['node']})" for b in row.biggest[:5]]
        self.emit(figures, "\n".join(lines))
        if run.status != "succeeded":
            raise failed(f"Run #{run.pk} ended {run.status}.")

    def do_advice(self, target: str, options) -> None:
        found = advice.advice(target)
        lines = [f"{target}: {found['shape']}"]
        lines += [f"[{f['severity']}] {f['finding']}  → {f['fix']}" for f in found["findings"]]
        for node in found["nodes"]:
            lines.append(f"--- {node['node']} ({node['role']})")
            lines += [
                f"  latency {e['event']}: latest {e['latest_ms']} ms, worst {e['max_ms']} ms"
                for e in node["latency"]
            ]
            lines += ["  " + line for line in node["memory_doctor"].strip().splitlines()]
            lines += ["  " + line for line in node["latency_doctor"].strip().splitlines()]
        found["analysis"] = found["analysis"].pk if found["analysis"] else None
        self.emit(found, "\n".join(lines))

    def local_cluster(self, primaries: int) -> None:
        """Start a cluster on free ports, print its target URL, stop it on Ctrl-C."""
        cluster = LocalCluster(primaries)
        self.stdout.write(f"cluster={cluster.url}")
        self.stdout.write("Running; Ctrl-C stops the nodes and removes their directory.")
        self.stdout.flush()
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        try:
            signal.sigwait(stop_signals)
        finally:
            cluster.stop()

    def report(self, run: Run, options) -> None:
        """Print the run; exit 1 if it ended unsuccessfully."""
        summary = {
            "run_id": run.pk,
            "status": run.status,
            "result": run.result,
            "error": run.error,
        }
        text = f"run #{run.pk} {run.status}"
        if run.result:
            text += " " + json.dumps(run.result, default=str)
        if run.error:
            text += f"\n{run.error}"
        self.emit(summary, text)
        if not run.is_active and run.status != "succeeded":
            raise failed(f"Run #{run.pk} ended {run.status}.")


def _pct(rate) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"

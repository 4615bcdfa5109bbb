"""`manage.py jobs …`: the command-line twin of the Jobs pages."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from jobs import registry, runner
from jobs.history import filtered_runs
from jobs.models import Run
from jobs.stats import job_stats


def run_as_dict(run: Run) -> dict:
    return {
        "id": run.pk,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "params": run.params,
        "progress": {
            "done": run.progress_done,
            "total": run.progress_total,
            "message": run.progress_message,
        },
        "result": run.result,
        "error": run.error,
        "actor": run.actor_name,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
    }


class Command(BaseCommand):
    help = "Jobs: list, run, history, stats, cancel, retry."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="registered jobs and their policies")
        run = sub.add_parser("run", help="launch a job")
        run.add_argument("name")
        run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        run.add_argument("--wait", action="store_true", help="wait until the run ends")
        history = sub.add_parser("history", help="newest runs first")
        history.add_argument("--job")
        history.add_argument("--status")
        history.add_argument("--actor")
        history.add_argument("--limit", type=int, default=20)
        stats = sub.add_parser("stats", help="per-job statistics")
        stats.add_argument("name")
        for verb in ("cancel", "retry", "show"):
            sub.add_parser(verb, help=f"{verb} a run").add_argument("run_id", type=int)
        for p in sub.choices.values():
            p.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        self.as_json = options["json"]
        actor = f"cli:{_os_user()}"
        if action == "list":
            return self.emit([_spec_dict(s) for s in registry.JOBS.values()])
        if action == "run":
            return self.launch(options["name"], options["param"], options["wait"], actor)
        if action == "history":
            data = {k: options[k] for k in ("status", "actor") if options[k]}
            if options["job"]:
                data["job"] = options["job"]
            runs = filtered_runs(data).order_by("-id")[: max(1, options["limit"])]
            return self.emit([run_as_dict(r) for r in runs])
        if action == "stats":
            if options["name"] not in registry.JOBS:
                raise CommandError(f"Unknown job {options['name']!r}.")
            return self.emit(job_stats(options["name"]).as_dict())
        run = Run.objects.filter(pk=options["run_id"]).first()
        if run is None:
            raise CommandError(f"No run #{options['run_id']}.")
        try:
            if action == "cancel":
                run = runner.cancel(run, actor)
            elif action == "retry":
                run = runner.retry(run, actor)
        except runner.LaunchRefused as exc:
            raise CommandError(str(exc)) from None
        return self.emit(run_as_dict(run))

    def launch(self, name: str, pairs: list[str], wait: bool, actor: str):
        spec = registry.JOBS.get(name)
        if spec and not spec.launchable:
            raise CommandError(f"{name} is a {spec.kind}: use its own command, which previews it.")
        params = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(f"--param takes KEY=VALUE, not {pair!r}")
            params[key] = value
        try:
            run = runner.start(name, params, actor)
        except (registry.UnknownJob, runner.LaunchRefused) as exc:
            raise CommandError(str(exc)) from None
        while wait and run.is_active:
            time.sleep(0.5)
            run.refresh_from_db()
        self.emit(run_as_dict(run))
        if wait and run.status != "succeeded":
            raise SystemExit(1)

    def emit(self, data):
        if self.as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        elif isinstance(data, list):
            for row in data:
                self.stdout.write(_line(row))
        else:
            for key, value in data.items():
                self.stdout.write(f"{key:>14}: {value}")


def _line(row: dict) -> str:
    if "status" in row:
        return (
            f"#{row['id']:<7} {row['name']:<22} {row['status']:<10} "
            f"{row['actor']:<22} {row['created_at'][:19]}  {row['error'][:60]}"
        )
    return f"{row['name']:<22} {row['description']}"


def _spec_dict(spec: registry.JobSpec) -> dict:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "retries": spec.retries,
        "backoff": spec.backoff,
        "backoff_max": spec.backoff_max,
        "soft_timeout": spec.soft_timeout,
        "exclusive": spec.exclusive,
        "params": list(spec.form.base_fields) if spec.form else [],
    }


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"

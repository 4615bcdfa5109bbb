"""`manage.py jobs …`: the command-line twin of the Jobs pages."""

from jobs import registry, runner
from jobs.history import filtered_runs, run_as_dict
from jobs.models import Run
from jobs.stats import job_stats
from opsconsole.commands import (
    ConsoleCommand,
    add_json_argument,
    add_wait_arguments,
    bad_input,
)


class Command(ConsoleCommand):
    help = "Jobs: list, run, history, stats, cancel, retry."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="registered jobs and their policies")
        run = sub.add_parser("run", help="launch a job")
        run.add_argument("name")
        run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        add_wait_arguments(run)
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
            add_json_argument(p)

    def handle(self, *args, action, **options):
        actor = self.actor
        if action == "list":
            return self.emit([_spec_dict(s) for s in registry.JOBS.values()])
        if action == "run":
            return self.launch(options["name"], options["param"], options, actor)
        if action == "history":
            data = {k: options[k] for k in ("status", "actor") if options[k]}
            if options["job"]:
                data["job"] = options["job"]
            runs = filtered_runs(data).order_by("-id")[: max(1, options["limit"])]
            return self.emit([run_as_dict(r) for r in runs])
        if action == "stats":
            if options["name"] not in registry.JOBS:
                raise bad_input(f"Unknown job {options['name']!r}.")
            return self.emit(job_stats(options["name"]).as_dict())
        run = Run.objects.filter(pk=options["run_id"]).first()
        if run is None:
            raise bad_input(f"No run #{options['run_id']}.")
        try:
            if action == "cancel":
                run = runner.cancel(run, actor)
            elif action == "retry":
                run = runner.retry(run, actor)
        except runner.LaunchRefused as exc:
            raise bad_input(str(exc)) from None
        return self.emit(run_as_dict(run))

    def launch(self, name: str, pairs: list[str], options: dict, actor: str):
        spec = registry.JOBS.get(name)
        if spec and not spec.launchable:
            raise bad_input(f"{name} is a {spec.kind}: use its own command, which previews it.")
        params = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise bad_input(f"--param takes KEY=VALUE, not {pair!r}")
            params[key] = value
        try:
            run = runner.start(name, params, actor)
        except (registry.UnknownJob, runner.LaunchRefused) as exc:
            raise bad_input(str(exc)) from None
        run = self.follow(run, options)
        self.emit(run_as_dict(run))
        self.check_ended_well(run, options)

    def emit(self, data, text=None):
        if isinstance(data, list) and text is None:
            text = "\n".join(_line(row) for row in data)
        super().emit(data, text)


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

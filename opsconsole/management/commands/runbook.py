"""`manage.py runbook list|show|run`: the command-line twin of the Runbooks page."""

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs.management.commands.jobs import run_as_dict
from opsconsole.models import RunbookRequest
from opsconsole.runbooks import RUNBOOKS, get, services


class Command(BaseCommand):
    help = "Runbooks: list them, show a preview, run one (--yes instead of typing its name)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list")
        for verb in ("show", "run"):
            p = sub.add_parser(verb)
            p.add_argument("name")
            p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        run = sub.choices["run"]
        run.add_argument("--as", dest="username", required=True, help="the console user acting")
        run.add_argument("--yes", action="store_true", help="confirm without typing the name")
        run.add_argument("--reason", default="run from the command line")
        run.add_argument("--wait", action="store_true")
        for p in sub.choices.values():
            p.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        self.as_json = options["json"]
        if action == "list":
            return self.emit(
                [
                    {
                        "name": b.name,
                        "title": b.title,
                        "role": b.role,
                        "needs_approval": b.needs_approval,
                        "steps": [s.name for s in b.steps],
                    }
                    for b in RUNBOOKS.values()
                ]
            )
        book = get(options["name"])
        if book is None:
            raise CommandError(f"Unknown runbook {options['name']!r}.")
        params = parse_params(options["param"], book)
        if action == "show":
            try:
                cleaned = book.clean(params)
            except Exception as exc:
                raise CommandError(f"Invalid parameters: {exc}") from None
            return self.emit(
                {"runbook": book.name, "params": cleaned, "steps": book.preview(cleaned)}
            )
        if not options["yes"]:
            raise CommandError("Add --yes to confirm: a runbook changes things.")
        user = get_user_model().objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {options['username']!r}.")
        try:
            outcome = services.launch(book, params, user, reason=options["reason"])
        except services.RunbookRefused as exc:
            raise CommandError(str(exc)) from None
        if isinstance(outcome, RunbookRequest):
            return self.emit({"request_id": outcome.pk, "status": "pending approval"})
        while options["wait"] and outcome.is_active:
            time.sleep(0.5)
            outcome.refresh_from_db()
        self.emit({**run_as_dict(outcome), "steps": outcome.result.get("steps", [])})
        if options["wait"] and outcome.status != "succeeded":
            raise SystemExit(1)

    def emit(self, data):
        if self.as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        elif isinstance(data, list):
            for row in data:
                self.stdout.write(f"{row['name']:<22} {row['title']}")
        else:
            for key, value in data.items():
                self.stdout.write(f"{key:>12}: {value}")


def parse_params(pairs: list[str], book) -> dict:
    multi = set()
    if book.form:
        from django import forms

        multi = {
            n for n, f in book.form.base_fields.items() if isinstance(f, forms.MultipleChoiceField)
        }
    params: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--param takes KEY=VALUE, not {pair!r}")
        if key in multi:
            params.setdefault(key, []).append(value)
        else:
            params[key] = value
    return params

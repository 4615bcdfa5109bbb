"""`manage.py runbook list|show|run`: the command-line twin of the Runbooks page."""

from django import forms
from django.contrib.auth import get_user_model

from jobs.history import run_as_dict
from opsconsole.commands import (
    ConsoleCommand,
    add_json_argument,
    add_wait_arguments,
    bad_input,
)
from opsconsole.models import RunbookRequest
from opsconsole.runbooks import RUNBOOKS, get, services


class Command(ConsoleCommand):
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
        add_wait_arguments(run)
        for p in sub.choices.values():
            add_json_argument(p)

    def handle(self, *args, action, **options):
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
            raise bad_input(f"Unknown runbook {options['name']!r}.")
        params = parse_params(options["param"], book)
        if action == "show":
            try:
                cleaned = book.clean(params)
            except Exception as exc:
                raise bad_input(f"Invalid parameters: {exc}") from None
            return self.emit(
                {"runbook": book.name, "params": cleaned, "steps": book.preview(cleaned)}
            )
        user = get_user_model().objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise bad_input(f"No active user {options['username']!r}.")
        try:
            outcome = services.launch(
                book, params, user, reason=options["reason"], assume_yes=options["yes"]
            )
        except services.RunbookRefused as exc:
            hint = "" if options["yes"] else " Add --yes to confirm: a runbook changes things."
            raise bad_input(f"{exc}{hint}") from None
        if isinstance(outcome, RunbookRequest):
            return self.emit({"request_id": outcome.pk, "status": "pending approval"})
        outcome = self.follow(outcome, options)
        self.emit({**run_as_dict(outcome), "steps": outcome.result.get("steps", [])})
        self.check_ended_well(outcome, options)

    def emit(self, data, text=None):
        if isinstance(data, list) and text is None:
            text = "\n".join(f"{row['name']:<22} {row['title']}" for row in data)
        super().emit(data, text)


def parse_params(pairs: list[str], book) -> dict:
    multi = set()
    if book.form:
        multi = {
            n for n, f in book.form.base_fields.items() if isinstance(f, forms.MultipleChoiceField)
        }
    params: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise bad_input(f"--param takes KEY=VALUE, not {pair!r}")
        if key in multi:
            params.setdefault(key, []).append(value)
        else:
            params[key] = value
    return params

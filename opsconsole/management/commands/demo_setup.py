import getpass
import importlib
import json
import os

from django.apps import apps
from django.core.management.base import BaseCommand

from opsconsole import users


class Command(BaseCommand):
    help = "Create the demo admin (password printed once) and load each app's demo data."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, username, **options):
        actor = f"cli:{getpass.getuser()}"
        password = os.environ.get("DEMO_PASSWORD")
        summary = {"admin": users.reset_demo_admin(actor, username, password)}
        # Each app may ship a `demo` module with `seed() -> dict` (what it created).
        for module in discover_demo_modules():
            summary[module.__name__] = module.seed()
        if options["json"]:
            self.stdout.write(_dumps(summary))
            return
        admin = summary["admin"]
        if admin["password"]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo admin: {admin['username']} / {admin['password']}  (shown once)"
                )
            )
        else:
            self.stdout.write(f"Demo admin {admin['username']} exists; password unchanged.")
        for name, result in summary.items():
            if name != "admin":
                self.stdout.write(f"{name}: {_dumps(result)}")


def discover_demo_modules() -> list:
    modules = []
    for config in apps.get_app_configs():
        try:
            modules.append(importlib.import_module(f"{config.name}.demo"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.demo":
                raise
    return modules


def _dumps(value) -> str:
    return json.dumps(value, default=str)

import importlib
import json
import os
import secrets

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from opsconsole.roles import set_role


class Command(BaseCommand):
    help = "Create the demo admin (password printed once) and load each app's demo data."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, username, **options):
        summary = {"admin": self.ensure_admin(username)}
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

    def ensure_admin(self, username: str) -> dict:
        users = get_user_model()
        password = os.environ.get("DEMO_PASSWORD")
        user = users.objects.filter(username=username).first()
        if user and not password:
            return {"username": username, "password": None}
        password = password or secrets.token_urlsafe(12)
        if user is None:
            user = users.objects.create_superuser(username, f"{username}@localhost", password)
        else:
            user.set_password(password)
            user.save()
        set_role(user, "admin")
        return {"username": username, "password": password}


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

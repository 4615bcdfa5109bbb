import getpass
import importlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connections

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
        summary |= seed_side_by_side(discover_demo_modules())
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


def seed_side_by_side(modules: list) -> dict:
    """Every app's demo data at once, one thread each: the loaders wait on PostgreSQL,
    Redis and the BigQuery emulator, not on Python, so `make demo` waits for the slowest
    loader instead of their sum. `loader_seconds` says how long each one took."""
    with ThreadPoolExecutor(max_workers=max(1, len(modules))) as pool:
        running = {module.__name__: pool.submit(_timed_seed, module) for module in modules}
    results = {name: future.result() for name, future in running.items()}
    summary = {name: result for name, (result, _) in results.items()}
    summary["loader_seconds"] = {name: seconds for name, (_, seconds) in results.items()}
    return summary


def _timed_seed(module) -> tuple[dict, float]:
    started = time.monotonic()
    try:
        return module.seed(), round(time.monotonic() - started, 1)
    finally:
        connections.close_all()  # this thread's connections to the console's database


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

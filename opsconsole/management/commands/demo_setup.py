import getpass
import importlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from opsconsole import users


class Command(BaseCommand):
    help = "Create the demo admin (password printed once) and load each app's demo data."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--migrate",
            action="store_true",
            help="Apply the console's migrations first, while the demo data loads.",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, username, migrate, **options):
        actor = f"cli:{getpass.getuser()}"
        password = os.environ.get("DEMO_PASSWORD")
        # Each app may ship a `demo` module with `seed() -> dict` (what it loaded into the
        # warehouses and Redis: never the console's database, which may be migrating
        # meanwhile) and `set_up_console(actor)` (snapshots, schedules, runs; it returns
        # what it did) for after.
        modules = discover_demo_modules()
        with ThreadPoolExecutor(max_workers=1) as pool:
            seeding = pool.submit(seed_side_by_side, modules)
            summary = {"migrate_seconds": _migrate(options) if migrate else None}
            summary["admin"] = users.reset_demo_admin(actor, username, password)
            summary |= seeding.result()
        summary["console"] = {
            module.__name__: module.set_up_console(actor)
            for module in modules
            if hasattr(module, "set_up_console")
        }
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


def _migrate(options: dict) -> float:
    started = time.monotonic()
    verbosity = 0 if options["json"] else options["verbosity"]
    call_command("migrate", interactive=False, verbosity=verbosity)
    return round(time.monotonic() - started, 1)


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

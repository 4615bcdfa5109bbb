"""The base of the console's management commands: who acts, --json, waiting, exit codes.

Every command that changes something is the CLI twin of a page: it calls the same
service, as the actor `cli:<os user>`, and answers with one of these exit codes
(README, "Command line"):

    0  succeeded (or, without --wait, accepted)
    1  failed: the action, or the run it waited for, did not succeed
    2  refused: bad input (unknown name, invalid parameter), confirmation missing,
       or a launch the console refused (already running); nothing was done
    3  timed out: --wait gave up after --timeout; the run itself goes on
"""

import getpass
import json
import time
from typing import Any, Protocol

from django.core.management.base import BaseCommand, CommandError

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_TIMED_OUT = 0, 1, 2, 3
DEFAULT_TIMEOUT_S = 3600.0


class Run(Protocol):
    """What waiting needs of a jobs.models.Run (the core does not import the jobs app)."""

    pk: int
    status: str
    error: str
    progress_message: str
    is_active: bool

    def refresh_from_db(self) -> None: ...


def bad_input(message: str) -> CommandError:
    """The error for input the command cannot act on (exit code 2)."""
    return CommandError(message, returncode=EXIT_BAD_INPUT)


def failed(message: str) -> CommandError:
    """The error for an action or run that did not succeed (exit code 1)."""
    return CommandError(message, returncode=EXIT_FAILED)


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


def add_json_argument(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_wait_arguments(parser, *, wait_by_default: bool = False) -> None:
    """--wait (or --no-wait where waiting is the default) and --timeout."""
    if wait_by_default:
        parser.add_argument("--no-wait", action="store_true", help="print the run and return")
    else:
        parser.add_argument("--wait", action="store_true", help="wait until the run ends")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"give up waiting after this many seconds (exit 3; default {DEFAULT_TIMEOUT_S:g})",
    )


def wants_wait(options: dict[str, Any]) -> bool:
    if "no_wait" in options:
        return not options["no_wait"]
    return bool(options.get("wait"))


class ConsoleCommand(BaseCommand):
    """A console command: `self.actor`, `self.emit(...)`, `self.follow(run, options)`."""

    poll_s = 0.5

    @property
    def actor(self) -> str:
        return f"cli:{os_user()}"

    def execute(self, *args, **options):
        self.as_json = bool(options.get("json"))
        return super().execute(*args, **options)

    def emit(self, data: Any, text: str | None = None) -> None:
        """Print `data` as JSON with --json, else `text` (or a key: value listing)."""
        if self.as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        elif text is not None:
            self.stdout.write(text)
        elif isinstance(data, dict):
            for key, value in data.items():
                self.stdout.write(f"{key:>14}: {value}")
        else:
            self.stdout.write(str(data))

    def wait_for(self, run: Run, timeout: float, *, progress: bool = False) -> Run:
        """Poll `run` until it ends; raise (exit 3) when `timeout` seconds pass first,
        saying whether it never left the queue (no worker?) or is still running."""
        deadline = time.monotonic() + timeout
        while True:
            run.refresh_from_db()
            if not run.is_active:
                break
            if time.monotonic() >= deadline:
                raise CommandError(_still_waiting(run, timeout), returncode=EXIT_TIMED_OUT)
            if progress and not self.as_json:
                line = f"#{run.pk} {run.status}: {run.progress.line()}"
                self.stderr.write(f"\r{line[:160]:<160}", ending="")
            time.sleep(self.poll_s)
        if progress and not self.as_json:
            self.stderr.write("")
        return run

    def follow(self, run: Run, options: dict[str, Any], *, progress: bool = False) -> Run:
        """Wait for `run` when asked (--wait / not --no-wait) and fail (exit 1) when it
        did not succeed. Without waiting, the run is returned as launched."""
        if not wants_wait(options):
            return run
        return self.wait_for(run, options["timeout"], progress=progress)

    def check_ended_well(self, run: Run, options: dict[str, Any]) -> None:
        """Exit 1 when the run waited for did not succeed (call after printing it)."""
        if wants_wait(options) and run.status != "succeeded":
            raise failed(f"Run #{run.pk} ended {run.status}. {run.error}".strip())


def _still_waiting(run: Run, timeout: float) -> str:
    if run.status == "queued":
        return (
            f"Run #{run.pk} is still queued after {timeout:g} s: is a Celery worker running? "
            f"It stays queued (cancel it: manage.py jobs cancel {run.pk})."
        )
    return (
        f"Run #{run.pk} is still {run.status} after {timeout:g} s; it goes on "
        f"(follow it: manage.py jobs show {run.pk})."
    )

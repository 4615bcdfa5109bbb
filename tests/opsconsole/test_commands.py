"""The commands' shared contract: exit codes 0/1/2/3 and --wait giving up at --timeout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Run
from opsconsole.commands import ConsoleCommand
from tests.jobs.conftest import release_slow_jobs  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_it_exits_2_on_bad_input_from_the_shell():
    result = subprocess.run(
        [sys.executable, "manage.py", "jobs", "run", "nope"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Unknown job 'nope'" in result.stderr


def test_it_exits_0_when_the_run_succeeds(celery_worker, capsys):
    call_command("jobs", "run", "test_ok", "--wait", "--json")
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"


def test_it_exits_1_when_the_run_fails(celery_worker, capsys):
    with pytest.raises(CommandError) as error:
        call_command(
            "jobs", "run", "test_slow", "--param", "fail=1", "--param", "seconds=0.1", "--wait"
        )
    assert error.value.returncode == 1
    run = Run.objects.order_by("-id").first()
    assert run.status == "failed" and "ended failed" in str(error.value)


def test_it_exits_2_on_a_refused_confirmation(transactional_db):
    with pytest.raises(CommandError, match="--yes") as error:
        call_command("cache", "invalidate", "--namespace", "anything")
    assert error.value.returncode == 2


@pytest.mark.usefixtures("release_slow_jobs")
def test_it_gives_up_waiting_for_a_running_run_at_the_timeout(celery_worker):
    with pytest.raises(CommandError, match="still running after 0.5 s; it goes on") as error:
        call_command("jobs", "run", "test_slow", "--wait", "--timeout", "0.5")
    assert error.value.returncode == 3
    assert Run.objects.get(name="test_slow").is_active  # the run itself goes on


def test_it_says_a_run_that_stays_queued_needs_a_worker(transactional_db):
    # Recorded but never handed to Celery: nothing will ever pick it up.
    run = Run.objects.create(name="test_ok", actor_name="cli:test", status="queued")
    with pytest.raises(CommandError, match="still queued after 0.3 s: is a Celery worker") as error:
        ConsoleCommand().wait_for(run, 0.3)
    assert error.value.returncode == 3
    run.refresh_from_db()
    assert run.status == "queued"

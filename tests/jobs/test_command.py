import json

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Run


def run_command(capsys, *args):
    call_command("jobs", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_it_lists_jobs(transactional_db, capsys):
    names = {job["name"] for job in run_command(capsys, "list")}
    assert {"table_sync", "refresh_matviews"} <= names


def test_it_runs_a_job_and_waits(celery_worker, capsys):
    result = run_command(capsys, "run", "test_ok", "--param", "a=1", "--wait")
    assert result["status"] == "succeeded" and result["result"] == {"echo": {"a": "1"}}
    assert Run.objects.get().actor_name.startswith("cli:")


def test_history_stats_and_cancel(transactional_db, capsys):
    run = Run.objects.create(name="test_ok", actor_name="x", status="queued")
    assert [r["id"] for r in run_command(capsys, "history", "--job", "test_ok")] == [run.pk]
    assert run_command(capsys, "stats", "test_ok")["runs"] == 1
    assert run_command(capsys, "cancel", str(run.pk))["status"] == "cancelled"


def test_it_reports_bad_input_without_a_traceback(transactional_db):
    with pytest.raises(CommandError, match="Unknown job 'nope'"):
        call_command("jobs", "run", "nope")
    with pytest.raises(CommandError, match="KEY=VALUE"):
        call_command("jobs", "run", "test_ok", "--param", "novalue")
    with pytest.raises(CommandError, match="No run #999"):
        call_command("jobs", "cancel", "999")

"""Production mode: `check --deploy` is clean; a missing variable stops start-up."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7!k2@pp-" + "q" * 60,
    "ALLOWED_HOSTS": "ops.example.com",
    "AUDIT_KEY": "k3y!" + "a" * 40,
    "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
}


def manage(*args, env):
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_missing_secret_key_names_the_variable():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_a_missing_audit_key_names_the_variable():
    env = {k: v for k, v in PRODUCTION.items() if k != "AUDIT_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "Set the AUDIT_KEY environment variable" in result.stderr


def test_a_short_audit_key_is_refused():
    result = manage("check", env={**PRODUCTION, "AUDIT_KEY": "short"})
    assert result.returncode != 0
    assert "AUDIT_KEY must be at least 32 characters" in result.stderr

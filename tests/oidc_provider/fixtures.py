"""The `oidc_provider` fixture: the provider in its own gunicorn process on a free port."""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.opsconsole.receivers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    env: dict
    changed: set = field(default_factory=set)  # users whose groups a test changed

    def set_groups(self, username: str, groups: list[str]) -> None:
        """Change the user's groups at the provider (in its own database)."""
        command = [sys.executable, "-m", "tests.oidc_provider.provision", "--groups", username]
        subprocess.run([*command, *groups], cwd=ROOT, env=self.env, check=True)
        self.changed.add(username)

    def session_of(self, username: str) -> requests.Session:
        """A browser session signed in at the provider (what the user's SSO cookie is)."""
        session = requests.Session()
        login = f"{self.issuer.removesuffix('/o')}/accounts/login/"
        session.get(login, timeout=10)
        password = {"alice": "alice-pw-1", "bob": "bob-pw-1", "dave": "dave-pw-1"}.get(
            username, f"{username}-pw-1"
        )
        form = {"username": username, "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"]}  # fmt: skip
        response = session.post(login, data=form, headers={"Referer": login}, timeout=10)
        session.signed_in = "sessionid" in session.cookies and response.ok
        return session


def _rsa_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="session")
def oidc_provider(live_server):
    """Start the provider, register the live console as its client, yield its coordinates."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="oidc-provider-")
    issuer = f"http://127.0.0.1:{port}/o"
    env = {
        **os.environ,
        "OIDC_PROVIDER_DB": os.path.join(workdir, "provider.sqlite3"),
        "OIDC_PROVIDER_RSA_KEY": _rsa_key(),
        "OIDC_PROVIDER_ISSUER": issuer,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
    }
    provisioned = subprocess.run(
        [sys.executable, "-m", "tests.oidc_provider.provision",
         f"{live_server.url}/oidc/callback/", f"{live_server.url}/login/"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    client = json.loads(provisioned.stdout.strip().splitlines()[-1])
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.oidc_provider.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).ok:
                break
        except requests.RequestException:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"the OIDC provider did not start: {server.stderr.read()!r}")
        time.sleep(0.2)
    yield Provider(issuer, client["client_id"], client["client_secret"], env)
    server.terminate()
    server.wait(timeout=10)

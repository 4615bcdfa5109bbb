"""Set the provider's database up: tables, the console as a client, users and groups.

    OIDC_PROVIDER_DB=… python -m tests.oidc_provider.provision <redirect_uri> <post_logout_uri>
    OIDC_PROVIDER_DB=… python -m tests.oidc_provider.provision --groups <user> [group …]

The first prints the client id and secret as JSON; the second sets a user's groups
(what an identity team does when someone changes teams).
"""

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")
django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

# username: (password, groups, active at the provider)
USERS = {
    "alice": ("alice-pw-1", ["ops-admins"], True),
    "bob": ("bob-pw-1", ["ops"], True),
    "dave": ("dave-pw-1", ["marketing"], True),
    "erin": ("erin-pw-1", ["ops"], False),
}
CLIENT_ID, CLIENT_SECRET = "opsconsole-tests", "opsconsole-tests-secret"


def main(redirect_uri: str, post_logout_uri: str) -> None:
    call_command("migrate", verbosity=0)
    for username, (password, groups, active) in USERS.items():
        user = User.objects.create_user(username, f"{username}@example.com", password)
        user.is_active = active
        user.save()
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    Application.objects.create(
        name="OpsConsole",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        post_logout_redirect_uris=post_logout_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    print(json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))


def set_groups(username: str, names: list[str]) -> None:
    user = User.objects.get(username=username)
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in names])


if __name__ == "__main__":
    if sys.argv[1] == "--groups":
        set_groups(sys.argv[2], sys.argv[3:])
    else:
        main(sys.argv[1], sys.argv[2])

"""The CLI twin of the tokens page: list, create (for a user or a service account), revoke."""

from django.contrib.auth import get_user_model

from opsconsole.commands import ConsoleCommand, add_json_argument, bad_input
from opsconsole.forms import ROLE_CHOICES
from opsconsole.tokens import services
from opsconsole.tokens.models import ApiToken

ROLES = [role for role, _ in ROLE_CHOICES]


def as_dict(token: ApiToken) -> dict:
    return {
        "id": token.pk,
        "owner": token.owner.get_username(),
        "name": token.name,
        "scope": token.scope,
        "state": token.state,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
    }


class Command(ConsoleCommand):
    help = "API tokens: list, create (the token text is printed once), revoke."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="every token (never their secrets)")
        add_json_argument(listing)
        create = sub.add_parser("create", help="issue a token and print it once")
        create.add_argument("--user", required=True, help="the owner's username")
        create.add_argument("--name", required=True)
        create.add_argument("--scope", choices=ROLES, default="viewer")
        create.add_argument("--days", type=int, default=90, help="expiry (default 90)")
        create.add_argument(
            "--service-account",
            action="store_true",
            help="create --user as a service account (no password) with the --scope role",
        )
        add_json_argument(create)
        revoke = sub.add_parser("revoke", help="stop a token from working")
        revoke.add_argument("token_id", type=int)
        add_json_argument(revoke)

    def handle(self, *args, action, **options):
        try:
            getattr(self, action)(options)
        except services.TokenRefused as exc:
            raise bad_input(str(exc)) from None

    def list(self, options):
        rows = [as_dict(t) for t in ApiToken.objects.select_related("owner").order_by("id")]
        lines = [
            f"#{r['id']} {r['owner']}/{r['name']} {r['scope']} {r['state']} "
            f"expires {r['expires_at']:%Y-%m-%d}"
            for r in rows
        ]
        self.emit(rows, "\n".join(lines) or "No tokens.")

    def create(self, options):
        username = options["user"]
        if options["service_account"]:
            owner = services.create_service_account(self.actor, username, options["scope"])
        else:
            owner = get_user_model().objects.filter(username=username).first()
            if owner is None:
                raise bad_input(f"No user named {username!r}.")
        issued = services.create_token(
            self.actor, owner, options["name"], options["scope"], options["days"]
        )
        data = as_dict(issued.token) | {"token": issued.secret}
        self.emit(data, f"{issued.secret}\n(shown once: store it now)")

    def revoke(self, options):
        token = ApiToken.objects.select_related("owner").filter(pk=options["token_id"]).first()
        if token is None:
            raise bad_input(f"No token #{options['token_id']}.")
        services.revoke_token(self.actor, token)
        self.emit(as_dict(token), f"Revoked {token.label}.")

"""OpenID Connect sign-in with mozilla-django-oidc, configured from the environment.

Only the issuer is configured: the endpoints come from its discovery document
(`<issuer>/.well-known/openid-configuration`, fetched when first needed and kept for
OIDC_DISCOVERY_TTL_S), so a password login never waits for the provider. Accounts are
matched on the provider's stable subject; roles come from the groups claim
(accounts.services). The session refresh re-reads the user's groups from the
provider's userinfo endpoint every OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS, server side:
a user removed from a group loses the role on their next request after that, and a
user the provider no longer knows (token revoked, account disabled) is signed out.
"""

import contextlib
import logging
import threading
import time
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from opsconsole import audit

from . import services
from .models import Origin, origin_of

log = logging.getLogger("opsconsole.sso")
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_discovered: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


class SSOUnavailable(ImproperlyConfigured):
    """The provider's discovery failed (503)."""


class SSONotConfigured(SSOUnavailable):
    """OIDC_ISSUER is empty: there is no single sign-on here (404)."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def discovery() -> dict:
    """The issuer's discovery document (cached); raises SSOUnavailable with the reason."""
    issuer = settings.OIDC_ISSUER
    if not issuer:
        raise SSONotConfigured("Single sign-on is not configured (OIDC_ISSUER is empty).")
    with _lock:
        fetched_at, document = _discovered.get(issuer, (0.0, {}))
        if document and time.monotonic() - fetched_at < settings.OIDC_DISCOVERY_TTL_S:
            return document
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SSOUnavailable(f"The identity provider did not answer at {url}: {exc}") from None
    if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise SSOUnavailable(f"{url} names another issuer ({document.get('issuer')!r}).")
    with _lock:
        _discovered[issuer] = (time.monotonic(), document)
    return document


def oidc_setting(attr: str, *args):
    """mozilla-django-oidc's settings, with the endpoints from discovery unless set."""
    if attr in ENDPOINTS and not getattr(settings, attr, None):
        return discovery()[ENDPOINTS[attr]]
    return import_from_settings(attr, *args)


def provider_logout_url(request) -> str:
    """Where the console's SSO logout sends the browser: the provider's end-session
    endpoint (RP-initiated logout), so that the provider's session ends too."""
    endpoint = discovery().get("end_session_endpoint")
    if not endpoint:
        return "/login/"
    params = {"client_id": settings.OIDC_RP_CLIENT_ID}
    if id_token := request.session.get("oidc_id_token"):
        params["id_token_hint"] = id_token
    params["post_logout_redirect_uri"] = request.build_absolute_uri("/login/")
    return f"{endpoint}?{urlencode(params)}"


class ConsoleOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code flow, with the console's account and role rules."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        # The endpoints are read when an SSO callback comes, not on every password
        # login (Django builds every backend for each authenticate() call).
        self.UserModel = auth.get_user_model()

    def authenticate(self, request, **kwargs):
        if not enabled() or request is None or "code" not in request.GET:
            return None
        super().__init__()
        return super().authenticate(request, **kwargs)

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims):
        user = services.user_for(settings.OIDC_ISSUER, claims)
        return self.UserModel.objects.filter(pk=user.pk) if user else self.UserModel.objects.none()

    def create_user(self, claims):
        return services.create_sso_user(settings.OIDC_ISSUER, claims)

    def update_user(self, user, claims):
        if not user.is_active:
            audit.write(
                f"sso:{user.get_username()}",
                "auth.login",
                user.get_username(),
                outcome="failed",
                error="account deactivated in the console",
                ip_address=audit.client_ip(self.request),
            )
            return None
        return services.sync_sso_user(user, claims)


class LocalPasswordBackend(ModelBackend):
    """Username and password of a local account, unless LOCAL_LOGIN_ENABLED is off
    (then only single sign-on signs anyone in; sessions already open stay open)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LOCAL_LOGIN_ENABLED:
            return None
        return super().authenticate(request, username, password, **kwargs)


class RoleRefresh:
    """Every OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS, re-read an SSO user's groups from the
    provider (userinfo, with the access token of their sign-in) and re-apply the role;
    sign the user out when the provider refuses the token."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._due(request):
            self.refresh(request)
        return self.get_response(request)

    @staticmethod
    def _due(request) -> bool:
        expires = (
            request.session.get("oidc_id_token_expiration") if hasattr(request, "session") else None
        )
        return bool(
            expires and time.time() > expires and enabled() and request.user.is_authenticated
            and origin_of(request.user) == Origin.OIDC
        )  # fmt: skip

    def refresh(self, request) -> None:
        token = request.session.get("oidc_access_token", "")
        try:
            response = requests.get(
                oidc_setting("OIDC_OP_USER_ENDPOINT"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=settings.OIDC_TIMEOUT,
            )
        except (requests.RequestException, SSOUnavailable) as exc:
            log.warning("session refresh of %s postponed: %s", request.user, exc)
            return
        if response.status_code in (401, 403):
            log.info("provider refused %s's token: signed out", request.user)
            auth.logout(request)
            return
        if response.ok:
            services.sync_sso_user(request.user, response.json())
            with contextlib.suppress(AttributeError):
                del request.user._opsconsole_role  # role_of() reads the new groups
        request.session["oidc_id_token_expiration"] = (
            time.time() + settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS
        )

"""The sign-in pages: the console's login page (password and/or SSO button) and
mozilla-django-oidc's three views with the console's discovery and refusals."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from mozilla_django_oidc import views as oidc_views

from . import oidc


class LoginView(auth_views.LoginView):
    """Django's login page, saying whether SSO and local passwords are on."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = oidc.enabled()
        context["local_login"] = settings.LOCAL_LOGIN_ENABLED
        context["sso_failed"] = "sso" in self.request.GET
        return context


def _unavailable(exc: oidc.SSOUnavailable) -> HttpResponse:
    """404 when SSO is not configured, 503 when the provider does not answer."""
    status = 404 if isinstance(exc, oidc.SSONotConfigured) else 503
    message = f"Single sign-on is unavailable: {exc}"
    return HttpResponse(message, status=status, content_type="text/plain")


@method_decorator(login_not_required, name="dispatch")
class SSOStart(oidc_views.OIDCAuthenticationRequestView):
    """Redirect to the provider (code flow with PKCE and a nonce)."""

    get_settings = staticmethod(oidc.oidc_setting)

    def __init__(self, *args, **kwargs):
        super(oidc_views.OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request):
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
            self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        except oidc.SSOUnavailable as exc:
            return _unavailable(exc)
        return super().get(request)


@method_decorator(login_not_required, name="dispatch")
class SSOCallback(oidc_views.OIDCAuthenticationCallbackView):
    """The provider's redirect back: sign in, or back to the login page with a message."""

    get_settings = staticmethod(oidc.oidc_setting)

    def get(self, request):
        try:
            return super().get(request)
        except oidc.SSOUnavailable as exc:
            return _unavailable(exc)


class SSOLogout(oidc_views.OIDCLogoutView):
    """End the console session, then the provider's (RP-initiated logout)."""

    get_settings = staticmethod(oidc.oidc_setting)

    def post(self, request):
        try:
            return super().post(request)
        except oidc.SSOUnavailable as exc:
            return _unavailable(exc)

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views
from .accounts import views as account_views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/readiness/", views.readiness_tile, name="readiness_tile"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", views.audit_log, name="audit"),
    path("audit/export.csv", views.audit_csv, name="audit_csv"),
    path("users/", views.users, name="users"),
    path("users/new/", views.user_create, name="user_create"),
    path("users/<int:user_id>/", views.user_update, name="user_update"),
    path("jobs/", include("jobs.urls")),
    path("cache/", include("cachemgr.urls")),
    path("partitions/", include("partitions.urls")),
    path("queries/", include("partitions.queries.urls")),
    path("runbooks/", include("opsconsole.runbooks.urls")),
    path("tokens/", include("opsconsole.tokens.urls")),
    path("api/", include("opsconsole.api.urls")),
    path("notifications/", include("opsconsole.notifications.urls")),
    path("oidc/", include("opsconsole.accounts.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "opsconsole.views.permission_denied"

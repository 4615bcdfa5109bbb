from django.urls import path

from . import views

urlpatterns = [
    path("authenticate/", views.SSOStart.as_view(), name="oidc_authentication_init"),
    path("callback/", views.SSOCallback.as_view(), name="oidc_authentication_callback"),
    path("logout/", views.SSOLogout.as_view(), name="oidc_logout"),
]

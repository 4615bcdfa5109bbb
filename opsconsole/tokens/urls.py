from django.urls import path

from . import views

urlpatterns = [
    path("", views.tokens, name="tokens"),
    path("new/", views.token_create, name="token_create"),
    path("<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("", views.notifications, name="notifications"),
    path("subscribe/", views.subscribe, name="notify_subscribe"),
    path(
        "subscriptions/<int:subscription_id>/delete/", views.unsubscribe, name="notify_unsubscribe"
    ),
    path("channels/new/", views.channel_create, name="notify_channel_create"),
    path("channels/<int:channel_id>/mute/", views.channel_mute, name="notify_channel_mute"),
    path("deliveries/", views.deliveries, name="notify_deliveries"),
]

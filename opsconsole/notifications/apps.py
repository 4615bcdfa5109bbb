from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "opsconsole.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from . import signals  # noqa: F401  (connects the outcome hooks)

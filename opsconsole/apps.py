from django.apps import AppConfig


class OpsConsoleConfig(AppConfig):
    name = "opsconsole"
    verbose_name = "OpsConsole"

    def ready(self):
        from . import signals  # noqa: F401

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OpsConsoleConfig(AppConfig):
    name = "opsconsole"
    verbose_name = "OpsConsole"

    def ready(self):
        from . import signals  # noqa: F401

        # The data migration creates the role groups; this keeps them after a flush.
        post_migrate.connect(ensure_roles, sender=self)


def ensure_roles(**kwargs):
    from django.contrib.auth.models import Group

    from .roles import ROLES

    for name in ROLES:
        Group.objects.get_or_create(name=name)

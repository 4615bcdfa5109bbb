from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Each app declares its long actions in a `jobdefs` module.
        autodiscover_modules("jobdefs")
        post_migrate.connect(_install_schedules, sender=self)


def _install_schedules(**kwargs):
    from .schedules import install_default_schedules

    install_default_schedules()

from django.apps import AppConfig


class CacheManagerConfig(AppConfig):
    name = "cachemgr"
    verbose_name = "Cache manager"

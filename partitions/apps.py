from django.apps import AppConfig


class PartitionsConfig(AppConfig):
    name = "partitions"
    verbose_name = "Partitions and queries"

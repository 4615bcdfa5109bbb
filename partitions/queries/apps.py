from django.apps import AppConfig


class QueriesConfig(AppConfig):
    name = "partitions.queries"
    label = "queries"
    verbose_name = "Queries"

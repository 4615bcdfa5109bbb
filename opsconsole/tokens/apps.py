from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "opsconsole.tokens"
    label = "tokens"
    verbose_name = "API tokens"

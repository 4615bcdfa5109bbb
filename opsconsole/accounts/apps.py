from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "opsconsole.accounts"
    label = "accounts"
    verbose_name = "Account origins"

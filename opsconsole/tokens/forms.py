from django import forms

from opsconsole.forms import ROLE_CHOICES

from .services import MAX_DAYS


class NewTokenForm(forms.Form):
    name = forms.SlugField(max_length=80, help_text="Letters, digits, - and _: e.g. deploy-bot")
    scope = forms.ChoiceField(choices=ROLE_CHOICES, initial="viewer")
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=90, label="Expires in days")
    # Admins only: issue the token to a service account (created when it does not exist).
    service_account = forms.SlugField(
        max_length=150, required=False, help_text="Admins: a service account's username"
    )

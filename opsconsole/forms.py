from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .roles import ROLES

ROLE_CHOICES = [(role, role.title()) for role in ROLES]


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    action = forms.CharField(required=False)
    target = forms.CharField(required=False, help_text="Part of the target's name")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'Since' must not be after 'until'.")
        return data


class NewUserForm(UserCreationForm):
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="viewer")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)
    is_active = forms.BooleanField(required=False, label="Active")

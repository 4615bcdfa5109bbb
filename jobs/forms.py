import uuid

from django import forms

from .models import RunStatus


class HistoryFilterForm(forms.Form):
    job = forms.CharField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *RunStatus.choices])
    kind = forms.CharField(required=False)
    actor = forms.CharField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class LaunchForm(forms.Form):
    """Carries the one-time key that makes a double-submitted launch start one run."""

    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["request_key"].initial = uuid.uuid4().hex

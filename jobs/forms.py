import uuid

from django import forms
from django_celery_beat.validators import (
    day_of_month_validator,
    day_of_week_validator,
    hour_validator,
    minute_validator,
    month_of_year_validator,
)

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


class CrontabForm(forms.Form):
    minute = forms.CharField(max_length=240, validators=[minute_validator])
    hour = forms.CharField(max_length=96, validators=[hour_validator])
    day_of_month = forms.CharField(max_length=124, validators=[day_of_month_validator])
    month_of_year = forms.CharField(max_length=64, validators=[month_of_year_validator])
    day_of_week = forms.CharField(max_length=64, validators=[day_of_week_validator])

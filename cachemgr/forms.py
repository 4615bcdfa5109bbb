"""Forms: validation and the messages operators read."""

import uuid

from django import forms

from opsconsole.confirmation import confirmation_error

from . import registry, targets
from .services import invalidation, keys


def target_choices():
    return [(name, name) for name in targets.names()]


class TargetField(forms.ChoiceField):
    def __init__(self, **kwargs):
        kwargs.setdefault("choices", target_choices)
        kwargs.setdefault("error_messages", {"invalid_choice": "Unknown cache target %(value)s."})
        super().__init__(**kwargs)


class OnceForm(forms.Form):
    """Carries a one-time key: a double-submitted form acts once."""

    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["request_key"].initial = uuid.uuid4().hex


class KeyField(forms.CharField):
    """A key sent as hex, so binary names and glob specials arrive intact."""

    widget = forms.HiddenInput

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return keys.key_from_hex(value)
        except ValueError:
            raise forms.ValidationError("That key reference is not valid hex.") from None


class KeySearchForm(forms.Form):
    target = TargetField(required=False)
    pattern = forms.CharField(required=False, max_length=invalidation.MAX_PATTERN)
    # Redis cursors are unsigned 64-bit; a cluster's combined cursor is that times the
    # number of primaries plus the node's index (keys.search), hence the wider bound.
    cursor = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=2**72,
        widget=forms.HiddenInput,
        error_messages={
            "invalid": "That SCAN cursor is not a number; start again from the first page.",
            "min_value": "That SCAN cursor is not one Redis gives out; start from the first page.",
            "max_value": "That SCAN cursor is not one Redis gives out; start from the first page.",
        },
    )

    page_size = forms.TypedChoiceField(
        required=False,
        choices=[(n, n) for n in keys.PAGE_SIZES],
        coerce=int,
        empty_value=keys.PAGE_SIZES[0],
        error_messages={"invalid_choice": "Show 50, 100 or 500 keys per page."},
    )
    listed = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean_pattern(self):
        pattern = self.cleaned_data["pattern"] or "*"
        try:
            invalidation.check_pattern(pattern)
        except invalidation.BadPattern as exc:
            raise forms.ValidationError(str(exc)) from None
        return pattern


class KeyForm(OnceForm):
    target = TargetField()
    key = KeyField()


class TTLForm(KeyForm):
    seconds = forms.IntegerField(
        required=False, min_value=1, max_value=10 * 365 * 86400, help_text="Empty clears the TTL."
    )


class InvalidateKeyForm(OnceForm):
    target = TargetField()
    key = forms.CharField(max_length=10_000, strip=False, help_text="The exact key name.")


class PatternForm(forms.Form):
    target = TargetField()
    pattern = forms.CharField(max_length=invalidation.MAX_PATTERN, strip=False)

    def clean_pattern(self):
        pattern = self.cleaned_data["pattern"]
        try:
            invalidation.check_pattern(pattern)
        except invalidation.BadPattern as exc:
            raise forms.ValidationError(str(exc)) from None
        return pattern


class ConfirmPatternForm(PatternForm, OnceForm):
    confirm = forms.CharField(required=False, strip=False)


class TagForm(OnceForm):
    target = TargetField()
    tag = forms.CharField(max_length=500)


class NamespaceForm(OnceForm):
    target = TargetField()
    namespace = forms.RegexField(
        regex=r"^[^:\s]+$",
        max_length=200,
        error_messages={"invalid": "A namespace is a name without ':' or spaces."},
    )
    confirm = forms.CharField(required=False, help_text="Type the namespace to confirm.")

    def clean(self):
        data = super().clean()
        message = "Type the namespace's name exactly to confirm."
        if data.get("namespace") and (
            error := confirmation_error(data["namespace"], data.get("confirm"), message)
        ):
            self.add_error("confirm", error)
        return data


def warmer_choices():
    return [(name, name) for name in sorted(registry.WARMERS)]


class WarmForm(OnceForm):
    target = TargetField()
    warmer = forms.ChoiceField(choices=warmer_choices)
    limit = forms.IntegerField(required=False, min_value=1, help_text="Empty warms everything.")


# --- job parameter forms (what the runner validates) ---------------------------


class InvalidatePatternJobForm(PatternForm):
    estimated_keys = forms.IntegerField(required=False, min_value=0)
    approval = forms.CharField(
        help_text="Signed by the preview: a pattern invalidation starts from its own page."
    )

    def clean(self):
        data = super().clean()
        if {"target", "pattern", "approval"} <= data.keys() and not (
            invalidation.approval_is_valid(data["approval"], data["target"], data["pattern"])
        ):
            raise forms.ValidationError("Start pattern invalidations from the Invalidate page.")
        return data


class WarmJobForm(forms.Form):
    target = TargetField()
    warmer = forms.ChoiceField(choices=warmer_choices)
    limit = forms.IntegerField(required=False, min_value=1)


class AnalyzeJobForm(forms.Form):
    target = TargetField()


class AnalyzeForm(OnceForm):
    """Start an exact analysis, or resume the stopped one named by `resume`."""

    target = TargetField()
    resume = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

"""The runbook page's confirmation: the runbook's name typed again, a reason, a request key."""

import json

from django import forms

from opsconsole.confirmation import confirmation_error

from .book import confirm_message


class ConfirmForm(forms.Form):
    confirm = forms.CharField(max_length=100)
    reason = forms.CharField(
        label="Reason (required)", max_length=300, help_text="Why now? Kept in the audit log."
    )
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, book=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.book = book
        # The label names the exact word; the browser enables the run button once it
        # matches (console.js), and clean_confirm checks again.
        confirm = self.fields["confirm"]
        confirm.label = f"Type {book.name} to confirm"
        confirm.widget.attrs.update(
            {"data-confirm-words": json.dumps([book.name]), "autocomplete": "off"}
        )

    def clean_confirm(self):
        typed = self.cleaned_data["confirm"]
        if error := confirmation_error(self.book.name, typed, confirm_message(self.book)):
            raise forms.ValidationError(error)
        return self.cleaned_data["confirm"]

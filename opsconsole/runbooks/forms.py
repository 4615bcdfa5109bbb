"""The runbook page's confirmation: the runbook's name typed again, a reason, a request key."""

from django import forms

from opsconsole.confirmation import confirmation_error

from .book import confirm_message


class ConfirmForm(forms.Form):
    confirm = forms.CharField(label="Type the runbook's name to confirm", max_length=100)
    reason = forms.CharField(max_length=300, help_text="Why now? Kept in the audit log.")
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, book=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.book = book

    def clean_confirm(self):
        typed = self.cleaned_data["confirm"]
        if error := confirmation_error(self.book.name, typed, confirm_message(self.book)):
            raise forms.ValidationError(error)
        return self.cleaned_data["confirm"]

from django import forms

from .models import Channel, ChannelKind, Event


class ChannelForm(forms.Form):
    """A new channel. Secrets are write-only: the page never renders them back."""

    name = forms.SlugField(max_length=80)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    url = forms.URLField(
        required=False, max_length=2000, assume_scheme="https", help_text="Webhook and Slack"
    )
    signing_secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput,
        help_text="Webhook: left blank, one is generated and shown once",
    )
    host = forms.CharField(required=False, max_length=255, label="SMTP host")
    port = forms.IntegerField(required=False, min_value=1, max_value=65535, label="SMTP port")
    username = forms.CharField(required=False, max_length=255, label="SMTP user")
    password = forms.CharField(
        required=False, max_length=255, widget=forms.PasswordInput, label="SMTP password"
    )
    use_tls = forms.BooleanField(required=False, label="STARTTLS")
    from_email = forms.EmailField(required=False, label="From")

    def clean(self):
        data = super().clean()
        if data.get("kind") in (ChannelKind.WEBHOOK, ChannelKind.SLACK) and not data.get("url"):
            self.add_error("url", "A webhook or Slack channel needs its URL.")
        return data

    def values(self) -> dict:
        data = self.cleaned_data
        if data["kind"] == ChannelKind.EMAIL:
            keys = ("host", "port", "username", "password", "use_tls", "from_email")
        else:
            keys = ("url", "signing_secret")
        return {key: data[key] for key in keys}


class SubscribeForm(forms.Form):
    channel = forms.ModelChoiceField(queryset=Channel.objects.all())
    event = forms.ChoiceField(choices=Event.choices)
    target = forms.CharField(
        required=False,
        max_length=300,
        help_text="A job name or a target (main:public.payments); blank for every one",
    )


class MuteForm(forms.Form):
    muted = forms.BooleanField(required=False)

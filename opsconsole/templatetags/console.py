from django import template
from django.utils.html import format_html

from opsconsole import display

register = template.Library()

STATUS_CLASSES = {
    "ok": "good",
    "succeeded": "good",
    "failed": "bad",
    "denied": "bad",
    "lost": "bad",
    "timed_out": "bad",
    "running": "busy",
    "retrying": "warn",
    "queued": "muted",
    "cancelled": "muted",
}


@register.simple_tag
def status_badge(status: str):
    css = STATUS_CLASSES.get(str(status), "muted")
    return format_html('<span class="badge {}">{}</span>', css, status)


@register.filter
def duration_ms(value):
    if value is None:
        return "—"
    value = float(value)
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 120_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


@register.filter
def facts(value):
    """A structured value (dict, list) as labelled, formatted facts: never a Python repr."""
    return display.facts(value)


@register.filter
def option_label(key):
    """`batch_rows` → "batch rows"."""
    return display.label(key).lower()

"""Structured values (a run's parameters and result, a step's detail, a plan's estimates)
as an operator reads them: labelled, with units, thousands separators and local times,
links to the runs and migrations they name, and never a secret.

One function renders every such value, so no page shows a Python repr.
"""

from datetime import datetime
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Keys whose values are secrets or signed tokens: shown as hidden, never printed.
SECRET_WORDS = ("approval", "token", "password", "secret", "signature", "key_hex")
# Keys naming another object: (url name, how to label it).
LINKS = {
    "run_id": "jobs:run_detail",
    "apply_run": "jobs:run_detail",
    "drop_run": "jobs:run_detail",
    "retry_of": "jobs:run_detail",
    "migration_id": "partitions:migration",
}
MAX_ITEMS = 50  # a longer list is cut, saying how many are left out


def label(key: str) -> str:
    """`null_keys_go_to` → "Null keys go to"."""
    words = str(key).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _is_secret(key: str) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in SECRET_WORDS)


def duration(seconds: float) -> str:
    """`2.5` → "2.5 s", `5400` → "1.5 h"."""
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _timestamp(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def scalar(key: str, value: Any) -> SafeString | str:
    """One value, formatted for the unit its key names."""
    key = str(key).lower()
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in LINKS and isinstance(value, int):
        try:
            return format_html('<a href="{}">#{}</a>', reverse(LINKS[key], args=[value]), value)
        except NoReverseMatch:
            return f"#{value}"
    if isinstance(value, int | float):
        if key.endswith("bytes") or key in ("bytes", "size", "memory", "used_memory"):
            return filesizeformat(value)
        if key.endswith("_ms"):
            return duration(value / 1000)
        if key.endswith(("_s", "seconds")):
            return duration(value)
        if isinstance(value, float):
            return f"{value:,.2f}"
        return f"{value:,}"
    if isinstance(value, str):
        return _timestamp(value) or value
    return str(value)


def facts(value: Any, key: str = "") -> SafeString:
    """A dict as a labelled list, a list of dicts as a table, anything else formatted."""
    if isinstance(value, dict):
        if not value:
            return mark_safe('<span class="muted">—</span>')
        rows = format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            (
                (
                    label(k),
                    mark_safe('<span class="muted">hidden</span>')
                    if _is_secret(k)
                    else facts(v, k),
                )
                for k, v in value.items()
            ),
        )
        return format_html('<dl class="kv facts">{}</dl>', rows)
    if isinstance(value, list | tuple):
        return _sequence(list(value), key)
    return format_html("{}", scalar(key, value))


def _sequence(items: list, key: str) -> SafeString:
    if not items:
        return mark_safe('<span class="muted">none</span>')
    more = len(items) - MAX_ITEMS
    shown = items[:MAX_ITEMS]
    tail = format_html(' <span class="muted">… and {} more</span>', f"{more:,}") if more > 0 else ""
    if all(isinstance(item, dict) for item in shown):
        columns = list(dict.fromkeys(k for item in shown for k in item))
        head = format_html_join("", "<th>{}</th>", ((label(c),) for c in columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (
                    format_html_join(
                        "",
                        "<td>{}</td>",
                        (
                            (
                                mark_safe('<span class="muted">hidden</span>')
                                if _is_secret(c)
                                else facts(item.get(c), c),
                            )
                            for c in columns
                        ),
                    ),
                )
                for item in shown
            ),
        )
        return format_html(
            '<table class="compact"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}',
            head,
            body,
            tail,
        )
    joined = format_html_join(", ", "{}", ((facts(item, key),) for item in shown))
    return format_html("{}{}", joined, tail)

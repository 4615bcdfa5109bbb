import json

from django import template
from django.utils.html import format_html

from opsconsole import display
from opsconsole.roles import has_role, role_of

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
def seconds(value):
    """`0.045` → "45 ms", `90` → "90.0 s", `5400` → "1.5 h"; "—" when unknown."""
    return "—" if value is None else display.duration(float(value))


@register.filter
def facts(value):
    """A structured value (dict, list) as labelled, formatted facts: never a Python repr."""
    return display.facts(value)


@register.filter
def statements(value) -> str:
    """A list of SQL statements as one text, each ended by `;` (for partials/_sql.html)."""
    if isinstance(value, str):
        value = [value]
    return "\n".join(f"{q.rstrip().rstrip(';')};" for q in value or [])


@register.filter
def confirm_words(word) -> str:
    """The typed confirmation's accepted word, as console.js reads it (data-confirm-words)."""
    return json.dumps([str(word)])


@register.filter
def fact(value, key=""):
    """One value inline, formatted for the unit its key names; a list joined: never a
    Python repr such as `[]`, `None` or `False`."""
    if isinstance(value, list | tuple):
        return ", ".join(str(display.scalar(key, item)) for item in value) or "none"
    return display.scalar(key, value)


@register.filter
def peak(values):
    """The largest of a list of numbers (a sparkline's top, for its axis label)."""
    return max(values, default=0)


@register.filter
def option_label(key):
    """`batch_rows` → "batch rows"."""
    return display.label(key).lower()


class NeedsRoleNode(template.Node):
    def __init__(self, role, nodelist):
        self.role, self.nodelist = role, nodelist

    def render(self, context):
        role = self.role.resolve(context)
        content = self.nodelist.render(context)
        user = context.get("user") or getattr(context.get("request"), "user", None)
        if user is not None and has_role(user, role):
            return content
        yours = role_of(user) if user is not None else None
        return format_html(
            '<fieldset class="plain" disabled>{}</fieldset>'
            '<p class="role-note small muted">Needs the {} role{}.</p>',
            content,
            role,
            f" (you are {'an' if (yours or '')[:1] in 'aeiou' else 'a'} {yours})" if yours else "",
        )


@register.tag
def needs_role(parser, token):
    """{% needs_role "operator" %}…form controls…{% endneeds_role %}: a user below the
    role sees the controls disabled and why, instead of a form that fails when sent."""
    try:
        _, role = token.split_contents()
    except ValueError:
        raise template.TemplateSyntaxError("needs_role takes one argument: the role") from None
    nodelist = parser.parse(("endneeds_role",))
    parser.delete_first_token()
    return NeedsRoleNode(parser.compile_filter(role), nodelist)

"""Forms of the Queries pages and jobs, with the messages operators read."""

from django import forms
from django.conf import settings

from opsconsole.confirmation import confirmation_error
from partitions import warehouses

from . import index_elements
from .slow import ORDERS

MAX_IDENTIFIER = 63


def _warehouse_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in warehouses.of_kind("postgres")]


def clean_identifier(value: str, what: str) -> str:
    """A PostgreSQL identifier as typed (it is quoted, never interpolated)."""
    value = (value or "").strip()
    if not value:
        raise forms.ValidationError(f"Give the {what}.")
    if len(value.encode()) > MAX_IDENTIFIER or "\x00" in value:
        raise forms.ValidationError(f"The {what} must be at most {MAX_IDENTIFIER} bytes.")
    return value


class WarehouseField(forms.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=_warehouse_choices, **kwargs)


class ColumnsField(forms.Field):
    """Index columns, in order: "a, lower(b), c text_pattern_ops" from a page (read with
    pglast: expressions and pattern operator classes as the advisor suggests them), or
    a list from a re-run's params."""

    def to_python(self, value):
        if value in (None, ""):
            return []
        if isinstance(value, list | tuple):
            parts = [str(c) for c in value]
        else:
            try:
                parts = index_elements.split(str(value))
            except index_elements.InvalidIndexElement as exc:
                raise forms.ValidationError(f"Columns: {exc}.") from None
        return [clean_identifier(c, "column") for c in parts if c.strip()]

    def validate(self, value):
        super().validate(value)
        if not 1 <= len(value) <= 8:
            raise forms.ValidationError("Give one to eight columns.")
        if len(set(value)) != len(value):
            raise forms.ValidationError("A column is listed twice.")


class SlowFilterForm(forms.Form):
    warehouse = WarehouseField(required=False)
    order = forms.ChoiceField(
        choices=[(o, f"{o} time" if o != "calls" else "calls") for o in ORDERS], required=False
    )
    min_ms = forms.FloatField(
        required=False, min_value=0, label="Mean at least (ms)", help_text="SLOW_QUERY_MS"
    )
    schema = forms.CharField(required=False, max_length=200)
    housekeeping = forms.BooleanField(
        required=False, label="Include DDL, bulk loads and catalog reads"
    )

    def filters(self) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "warehouse": data.get("warehouse") or warehouses.default_postgres(),
            "order": data.get("order") or "total",
            "min_ms": settings.SLOW_QUERY_MS if data.get("min_ms") is None else data["min_ms"],
            "schema": (data.get("schema") or "").strip(),
            "housekeeping": bool(data.get("housekeeping")),
        }


class ExplainForm(forms.Form):
    warehouse = WarehouseField()
    statement = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=100_000)
    values = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Sample values for $1…$n, one per line. Empty: generic plan.",
    )
    analyze = forms.BooleanField(
        required=False,
        label="EXPLAIN ANALYZE (SELECT only, rolled back, under a statement timeout)",
    )

    def sample_values(self) -> list[str] | None:
        text = self.cleaned_data.get("values") or ""
        lines = [line.rstrip("\r") for line in text.split("\n")]
        while lines and not lines[-1].strip():
            lines.pop()
        return lines or None


class ConfirmForm(forms.Form):
    confirm = forms.CharField(max_length=200, label="Type to confirm")


class ApplyIndexForm(forms.Form):
    """Parameters of the apply job; the index name typed again as confirmation."""

    warehouse = WarehouseField()
    schema = forms.CharField(max_length=200)
    table = forms.CharField(max_length=200)
    columns = ColumnsField(help_text="Comma-separated, in index order.")
    name = forms.CharField(max_length=200, label="Index name")
    confirm = forms.CharField(max_length=200, label="Type the index name to confirm")

    def clean_schema(self):
        return clean_identifier(self.cleaned_data["schema"], "schema")

    def clean_table(self):
        return clean_identifier(self.cleaned_data["table"], "table")

    def clean_name(self):
        return clean_identifier(self.cleaned_data["name"], "index name")

    def clean(self):
        data = super().clean()
        message = f"Type the index name {data.get('name')!r} exactly to apply it."
        if data.get("name") and (
            error := confirmation_error(data["name"], data.get("confirm"), message)
        ):
            self.add_error("confirm", error)
        return data


class RollbackIndexForm(forms.Form):
    warehouse = WarehouseField()
    schema = forms.CharField(max_length=200)
    name = forms.CharField(max_length=200)
    confirm = forms.CharField(max_length=200)
    apply_run = forms.IntegerField(required=False)

    def clean(self):
        data = super().clean()
        message = f"Type the index name {data.get('name')!r} exactly to drop it."
        if data.get("name") and (
            error := confirmation_error(data["name"], data.get("confirm"), message)
        ):
            self.add_error("confirm", error)
        return data


class IndexAdvisorForm(forms.Form):
    """The index advisor's options on the page (the CLI's `queries indexes` twins)."""

    warehouse = WarehouseField(required=False)
    schema = forms.CharField(required=False, max_length=200)
    min_ms = forms.FloatField(required=False, min_value=0, label="Mean at least (ms)")
    min_calls = forms.IntegerField(required=False, min_value=1, label="Calls at least")
    min_cost = forms.FloatField(required=False, min_value=0, label="Plan cost at least")
    min_saving = forms.FloatField(
        required=False, min_value=1, max_value=99, label="Cost cut at least (%)"
    )
    max_indexes = forms.IntegerField(required=False, min_value=1, label="At most indexes")
    max_per_table = forms.IntegerField(required=False, min_value=1, label="Per table")
    max_total_mb = forms.FloatField(required=False, min_value=0, label="Total size (MB)")
    include = forms.CharField(required=False, max_length=2000, label="Only tables")
    exclude = forms.CharField(required=False, max_length=2000, label="Not tables")

    def options(self) -> dict:
        """Overrides for advisor.suggest_indexes (None: the default)."""
        data = self.cleaned_data if self.is_valid() else {}
        saving = data.get("min_saving")
        return {
            "containing": (data.get("schema") or "").strip() or None,
            "min_mean_ms": data.get("min_ms"),
            "min_calls": data.get("min_calls"),
            "min_cost": data.get("min_cost"),
            "margin": saving / 100 if saving is not None else None,
            "max_indexes": data.get("max_indexes"),
            "max_per_table": data.get("max_per_table"),
            "max_total_mb": data.get("max_total_mb"),
            "include_tables": _names(data.get("include")),
            "exclude_tables": _names(data.get("exclude")),
        }


def _names(text: str | None) -> tuple[str, ...] | None:
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    return names or None


class DropIndexForm(forms.Form):
    """Parameters of the drop job: the index name typed again as confirmation."""

    warehouse = WarehouseField()
    schema = forms.CharField(max_length=200)
    name = forms.CharField(max_length=200, label="Index name")
    confirm = forms.CharField(max_length=200, label="Type the index name to confirm")

    def clean_schema(self):
        return clean_identifier(self.cleaned_data["schema"], "schema")

    def clean_name(self):
        return clean_identifier(self.cleaned_data["name"], "index name")

    def clean(self):
        data = super().clean()
        if data.get("name") and data.get("confirm", "").strip() != data["name"]:
            self.add_error("confirm", f"Type the index name {data['name']!r} exactly to drop it.")
        return data


class RecreateIndexForm(DropIndexForm):
    drop_run = forms.IntegerField()


class DemoFullLoadForm(forms.Form):
    """Parameters of the demo shop's full load (the demo's own tables only)."""

    warehouse = WarehouseField()
    schema = forms.CharField(max_length=200, initial="shop")
    orders = forms.IntegerField(min_value=1, max_value=10_000_000, initial=800_000)

    def clean_schema(self):
        schema = clean_identifier(self.cleaned_data["schema"], "schema")
        if len(schema.encode()) > MAX_IDENTIFIER - len("_load"):
            raise forms.ValidationError("The schema name leaves no room for its _load twin.")
        return schema

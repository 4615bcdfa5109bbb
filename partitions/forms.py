"""Forms for planning, confirming and rolling back; messages are the operator's."""

import json

from django import forms

from opsconsole.confirmation import confirmation_error

from .backends.base import CONSENT_LOSE_UNIQUENESS, Column, TableInfo
from .backends.postgres.rules import MAX_LIST_VALUES, MODULUS_MAX, MODULUS_MIN, fitting_schemes
from .models import Migration

GRANULARITIES = {
    "postgres": [("month", "month"), ("week", "week"), ("day", "day")],
    "bigquery": [("DAY", "DAY"), ("MONTH", "MONTH"), ("YEAR", "YEAR"), ("HOUR", "HOUR")],
}


SCHEME_LABELS = {
    "range": "range: a partition per range of the key",
    "hash": "hash: rows spread evenly over a fixed number of partitions",
    "list": f"list: a partition per value (at most {MAX_LIST_VALUES}), a default for new ones",
}


def column_schemes(column: Column, backend_kind: str) -> tuple[str, ...]:
    """The schemes the plan form offers for a column (BigQuery: time ranges only)."""
    if backend_kind == "postgres":
        return fitting_schemes(column)
    return ("range",) if column.is_time else ()


class PartitionColumnForm(forms.Form):
    """The column to partition by, chosen first (GET): the plan form then offers only
    the schemes and figures that fit its type."""

    column = forms.ChoiceField(label="Partition column", required=False)

    def __init__(self, *args, table: TableInfo, backend_kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = table
        offered = [c for c in table.columns if column_schemes(c, backend_kind)]
        self.fields["column"].choices = [(c.name, f"{c.name} ({c.type})") for c in offered]
        refused = [f"{c.name} ({c.type})" for c in table.columns if c not in offered]
        self.fields["column"].help_text = (
            "Time ranges need a timestamp or date column"
            if backend_kind != "postgres"
            else "Ranges need a time, integer or UUIDv7 column; hash and list take any type"
            " with equality"
        ) + (f"; refused: {', '.join(refused)}." if refused else ".")

    def chosen(self) -> str | None:
        """The chosen column, else the first time column, else the first offered."""
        if self.is_valid() and self.cleaned_data["column"]:
            return self.cleaned_data["column"]
        offered = [name for name, _label in self.fields["column"].choices]
        timed = [c.name for c in self.table.time_columns if c.name in offered]
        return (timed or offered or [None])[0]


# The figures a scheme does not read: dropped from its options.
NOT_FOR = {
    "range": ("modulus",),
    "hash": ("granularity", "width", "keep_ranges"),
    "list": ("granularity", "width", "keep_ranges", "modulus"),
}


class PlanForm(forms.Form):
    column = forms.ChoiceField(label="Partition column", widget=forms.HiddenInput)
    scheme = forms.ChoiceField(label="Partitioning", required=False)
    granularity = forms.ChoiceField(required=False)
    width = forms.IntegerField(
        required=False,
        min_value=1,
        label="Range width",
        help_text="Range partitioning: how many ids per range. Empty: a round width giving"
        " about 16 ranges over today's ids.",
    )
    keep_ranges = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Integer ranges carry no age, so retention drops none unless you ask: keep"
        " the newest this many ranges that hold ids, drop those below them.",
    )
    modulus = forms.IntegerField(
        required=False,
        min_value=MODULUS_MIN,
        max_value=MODULUS_MAX,
        initial=8,
        help_text="Hash partitioning: how many partitions.",
    )
    clustering = forms.CharField(
        required=False,
        help_text="BigQuery only: up to 4 columns, comma-separated.",
    )
    retention_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=36500,
        help_text="Partitions wholly older than this are dropped by the nightly retention job"
        " (BigQuery: partition expiration).",
    )
    require_partition_filter = forms.BooleanField(required=False, help_text="BigQuery only.")
    null_keys = forms.ChoiceField(
        label="NULL partition keys",
        choices=[
            ("refuse", "refuse the plan if any row has none (default)"),
            ("lose_uniqueness", "accept them: the primary key becomes a plain index"),
            ("backfill", "give them the value below (written to the original table)"),
        ],
        initial="refuse",
        required=False,
        help_text="PostgreSQL tables with a primary key: a key of a partitioned table must"
        " include the partition column, which a NULL cannot be in.",
    )
    consent = forms.CharField(
        required=False,
        label="Consent",
        help_text=f'To accept NULL keys, type "{CONSENT_LOSE_UNIQUENESS}".',
    )
    null_backfill = forms.CharField(
        required=False,
        label="Value for NULL keys",
        help_text="With NULL keys: backfill, a date or timestamp such as 2024-01-01.",
    )
    batch_rows = forms.IntegerField(initial=50_000, min_value=100, max_value=5_000_000)
    throttle_ms = forms.IntegerField(
        initial=0, min_value=0, max_value=10_000, help_text="Pause between copy batches."
    )

    def __init__(self, *args, table: TableInfo, backend_kind: str, column: str | None, **kwargs):
        """`column`: the chosen partition column (posted, or chosen on the page); the
        fields that do not fit its type are left out."""
        super().__init__(*args, **kwargs)
        self.table = table
        self.backend_kind = backend_kind
        offered = [c for c in table.columns if column_schemes(c, backend_kind)]
        self.fields["column"].choices = [(c.name, c.name) for c in offered]
        chosen = table.column(self.data.get("column") or column or "")
        self.key = chosen if chosen in offered else None
        self.initial.setdefault("column", self.key.name if self.key else "")
        schemes = column_schemes(self.key, backend_kind) if self.key else ()
        self.fields["scheme"].choices = [(s, SCHEME_LABELS[s]) for s in schemes]
        self.fields["granularity"].choices = GRANULARITIES[backend_kind]
        kind = self.key.key_kind if self.key else "time"
        if not ("range" in schemes and kind in ("time", "uuid")):
            del self.fields["granularity"], self.fields["retention_days"]
        if not ("range" in schemes and kind == "integer"):
            del self.fields["width"], self.fields["keep_ranges"]
        if "hash" not in schemes:
            del self.fields["modulus"]
        if schemes:
            self.initial.setdefault("scheme", schemes[0])
        if len(schemes) < 2:
            self.fields["scheme"].widget = forms.HiddenInput()

    def clean_clustering(self) -> list[str]:
        names = [n.strip() for n in self.cleaned_data["clustering"].split(",") if n.strip()]
        if names and self.backend_kind != "bigquery":
            raise forms.ValidationError("Clustering applies to BigQuery tables only.")
        if len(names) > 4:
            raise forms.ValidationError("BigQuery clusters by at most 4 columns.")
        known = {c.name for c in self.table.columns}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise forms.ValidationError(f"No such column: {', '.join(unknown)}.")
        return names

    def clean(self):
        data = super().clean()
        if data.get("require_partition_filter") and self.backend_kind != "bigquery":
            self.add_error("require_partition_filter", "Applies to BigQuery tables only.")
        for name in ("scheme", "granularity"):  # left empty: the first choice
            if name in self.fields and not data.get(name) and self.fields[name].choices:
                data[name] = self.fields[name].choices[0][0]
        return data

    def options(self) -> dict:
        data = dict(self.cleaned_data)
        for name in NOT_FOR.get(data.get("scheme"), ()):
            data.pop(name, None)
        return {k: v for k, v in data.items() if v not in (None, "")}


class TypedTableField(forms.CharField):
    """The typed confirmation of a migration's table: its label says what to type, and the
    browser enables the button once it matches (console.js; the server checks again)."""

    def __init__(self, migration: Migration, action: str, **kwargs):
        words = migration.confirmation_words
        super().__init__(
            label=f"Type {migration.table} (or {migration.schema}.{migration.table}) to {action}",
            max_length=1024,
            strip=False,
            widget=forms.TextInput(
                attrs={"data-confirm-words": json.dumps(words), "autocomplete": "off"}
            ),
            **kwargs,
        )
        self.migration = migration

    def validate(self, value):
        super().validate(value)
        expected = f"{self.migration.table} or {self.migration.schema}.{self.migration.table}"
        if error := confirmation_error(
            self.migration.confirmation_words, value, f"Type exactly: {expected}"
        ):
            raise forms.ValidationError(error)


class ConfirmForm(forms.Form):
    reason = forms.CharField(
        label="Reason (required)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Why now? Kept in the audit log.",
    )

    def __init__(self, *args, migration: Migration, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields = {"confirm": TypedTableField(migration, "confirm"), **self.fields}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason (required)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Why now? Kept in the audit log.",
    )


class DropOriginalForm(forms.Form):
    def __init__(self, *args, migration: Migration, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["confirm"] = TypedTableField(migration, "drop its original")

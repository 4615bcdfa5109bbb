"""Forms for planning, confirming and rolling back; messages are the operator's."""

import json

from django import forms

from opsconsole.confirmation import confirmation_error

from .backends.base import CONSENT_LOSE_UNIQUENESS, TableInfo
from .models import Migration

GRANULARITIES = {
    "postgres": [("month", "month"), ("week", "week"), ("day", "day")],
    "bigquery": [("DAY", "DAY"), ("MONTH", "MONTH"), ("YEAR", "YEAR"), ("HOUR", "HOUR")],
}


class PlanForm(forms.Form):
    column = forms.ChoiceField(label="Partition column")
    granularity = forms.ChoiceField()
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

    def __init__(self, *args, table: TableInfo, backend_kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = table
        self.backend_kind = backend_kind
        self.fields["column"].choices = [
            (c.name, f"{c.name} ({c.type})") for c in table.time_columns
        ]
        refused = [f"{c.name} ({c.type})" for c in table.columns if not c.is_time]
        self.fields["column"].help_text = (
            "Only timestamp and date columns can partition by time ranges"
            + (f"; refused: {', '.join(refused)}." if refused else ".")
        )
        self.fields["granularity"].choices = GRANULARITIES[backend_kind]

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
        return data

    def options(self) -> dict:
        data = dict(self.cleaned_data)
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

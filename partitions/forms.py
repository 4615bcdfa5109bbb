"""Forms for planning, confirming and rolling back; messages are the operator's."""

from django import forms

from opsconsole.confirmation import confirmation_error

from .backends.base import TableInfo

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


class ConfirmForm(forms.Form):
    confirm = forms.CharField(label="Type the table name to confirm", max_length=1024, strip=False)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(self, *args, table: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = table

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"]
        if error := confirmation_error(self.table, typed, f"Type exactly: {self.table}"):
            raise forms.ValidationError(error)
        return self.cleaned_data["confirm"]


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class DropOriginalForm(forms.Form):
    confirm = forms.CharField(label="Type the table name to drop its original", max_length=1024)

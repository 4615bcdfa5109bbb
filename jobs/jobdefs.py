"""The jobs that ship with the console. Each is a thin wrapper over a service."""

from celery.schedules import crontab
from django import forms

from partitions import warehouses
from partitions.backends.bigquery import TABLE_RE

from . import sync, sync_bigquery
from .registry import job


def warehouse_choices(kinds=("postgres",)) -> list[tuple[str, str]]:
    return [(name, name) for name in warehouses.names() if is_kind(name, *kinds)]


def target_choices() -> list[tuple[str, str]]:
    return warehouse_choices(kinds=("postgres", "bigquery"))


def is_kind(name: str, *kinds: str) -> bool:
    """Whether warehouse `name` is configured with a URL of one of `kinds`."""
    return any(name in warehouses.of_kind(kind) for kind in kinds)


class WarehouseField(forms.ChoiceField):
    def __init__(self, choices=warehouse_choices, **kwargs):
        super().__init__(choices=choices, **kwargs)


class TableSyncForm(forms.Form):
    source = WarehouseField(initial="main", help_text="Database holding the source table")
    source_table = forms.CharField(initial="public.payments", max_length=200)
    target = WarehouseField(
        choices=target_choices, initial="main", help_text="Warehouse receiving the copy"
    )
    target_table = forms.CharField(
        initial="analytics.payments",
        max_length=200,
        help_text="schema.table in PostgreSQL; a table of the warehouse's dataset in BigQuery",
    )
    watermark = forms.CharField(
        initial="updated_at", max_length=63, help_text="Column that grows when a row changes"
    )
    batch_size = forms.IntegerField(initial=5000, min_value=1, max_value=100_000)

    def clean(self):
        data = super().clean()
        target, table = data.get("target"), data.get("target_table")
        bigquery = target and is_kind(target, "bigquery")
        if bigquery and table and not TABLE_RE.fullmatch(table):
            self.add_error(
                "target_table",
                "A BigQuery target is a table name in the warehouse's dataset: letters,"
                " digits, _, - and spaces, without a dataset or project.",
            )
        return data


@job(
    "table_sync",
    form=TableSyncForm,
    retries=3,
    backoff=5,
    backoff_max=60,
    exclusive=True,
    soft_timeout=1800,
    hard_timeout=1900,
    schedule=crontab(minute="*/5"),
    schedule_params={
        "source": "main",
        "source_table": "public.payments",
        "target": "main",
        "target_table": "analytics.payments",
    },
)
def table_sync(ctx, params):
    """Copy new and changed rows of a PostgreSQL table into the warehouse, by watermark."""

    def report(read, written, message, total=None):
        ctx.progress(read, total, message)
        ctx.log(f"{message} ({written} rows written so far)")

    copy = sync.sync_table
    if is_kind(params["target"], "bigquery"):
        copy = sync_bigquery.sync_to_bigquery

    result = copy(
        warehouses.url_of(params["source"]),
        params["source_table"],
        warehouses.url_of(params["target"]),
        params["target_table"],
        watermark=params.get("watermark", "updated_at"),
        batch_size=int(params.get("batch_size", 5000)),
        report=report,
    )
    read = result["rows_read"]  # the planner's estimate was the total until now
    ctx.progress(read, read, f"{read:,} rows in {result['batches']:,} batches")
    return result


class RefreshMatviewsForm(forms.Form):
    warehouse = WarehouseField(initial="main")
    views = forms.CharField(
        initial="analytics.daily_revenue",
        help_text="Comma-separated schema.view names",
        max_length=2000,
    )

    def clean_views(self):
        names = [v.strip() for v in self.cleaned_data["views"].split(",") if v.strip()]
        if not names:
            raise forms.ValidationError("Name at least one materialized view.")
        return ",".join(names)


@job(
    "refresh_matviews",
    form=RefreshMatviewsForm,
    retries=2,
    backoff=10,
    exclusive=True,
    soft_timeout=3600,
    schedule=crontab(minute="7"),
    schedule_params={"warehouse": "main", "views": "analytics.daily_revenue"},
)
def refresh_matviews(ctx, params):
    """REFRESH MATERIALIZED VIEW CONCURRENTLY for each configured view."""
    url = warehouses.url_of(params["warehouse"])
    names = params["views"].split(",")
    refreshed = []
    for done, name in enumerate(names, start=1):
        refreshed.append(sync.refresh_matview(url, name))
        ctx.progress(done, len(names), f"refreshed {name}")
    return {"views": refreshed}


class DemoFeedForm(forms.Form):
    warehouse = WarehouseField(initial="main")
    rows = forms.IntegerField(initial=200, min_value=1, max_value=100_000)


@job("demo_payments_feed", form=DemoFeedForm, exclusive=True, soft_timeout=120)
def demo_payments_feed(ctx, params):
    """Demo only: new payments arrive and some change status, as in production."""
    from . import demo

    return demo.feed_payments(warehouses.url_of(params["warehouse"]), int(params["rows"]))

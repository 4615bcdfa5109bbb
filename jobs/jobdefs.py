"""The jobs that ship with the console. Each is a thin wrapper over a service."""

from celery.schedules import crontab
from django import forms
from django.conf import settings

from . import sync
from .registry import job


def warehouse_choices() -> list[tuple[str, str]]:
    return [
        (name, name)
        for name, url in settings.WAREHOUSES.items()
        if url.startswith(("postgres://", "postgresql://"))
    ]


class WarehouseField(forms.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=warehouse_choices, **kwargs)


class TableSyncForm(forms.Form):
    source = WarehouseField(initial="main", help_text="Database holding the source table")
    source_table = forms.CharField(initial="public.payments", max_length=200)
    target = WarehouseField(initial="main", help_text="Warehouse receiving the copy")
    target_table = forms.CharField(initial="analytics.payments", max_length=200)
    watermark = forms.CharField(
        initial="updated_at", max_length=63, help_text="Column that grows when a row changes"
    )
    batch_size = forms.IntegerField(initial=5000, min_value=1, max_value=100_000)


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

    def report(read, written, message):
        ctx.progress(read, None, message)
        ctx.log(f"{message} ({written} rows written so far)")

    return sync.sync_table(
        settings.WAREHOUSES[params["source"]],
        params["source_table"],
        settings.WAREHOUSES[params["target"]],
        params["target_table"],
        watermark=params.get("watermark", "updated_at"),
        batch_size=int(params.get("batch_size", 5000)),
        report=report,
    )


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
    url = settings.WAREHOUSES[params["warehouse"]]
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

    return demo.feed_payments(settings.WAREHOUSES[params["warehouse"]], int(params["rows"]))

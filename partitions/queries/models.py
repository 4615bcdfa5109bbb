"""What the Queries module keeps: pg_stat_statements snapshots, for trends over days."""

from django.db import models


class StatementSnapshot(models.Model):
    """One statement's cumulative pg_stat_statements figures at one beat tick."""

    warehouse = models.CharField(max_length=64)
    queryid = models.BigIntegerField()
    query = models.TextField()
    taken_at = models.DateTimeField()
    calls = models.BigIntegerField()
    total_ms = models.FloatField()
    mean_ms = models.FloatField()
    rows = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["warehouse", "queryid", "taken_at"]),
            models.Index(fields=["taken_at"]),
        ]
        ordering = ["taken_at"]

    def __str__(self) -> str:
        return f"{self.warehouse}:{self.queryid} at {self.taken_at:%Y-%m-%d %H:%M}"


class IndexAnalysis(models.Model):
    """The index advisor's last result for one warehouse and one set of options. The
    page serves it (a Celery task computes it, one at a time per row), so a request
    never waits on the advisor's EXPLAINs; the CLI still computes directly."""

    warehouse = models.CharField(max_length=64)
    options_key = models.CharField(max_length=64)  # sha256 of the options as sorted JSON
    options = models.JSONField(default=dict)
    advice = models.JSONField(null=True, blank=True)  # advisor.Advice.as_dict()
    error = models.TextField(blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    took_s = models.FloatField(null=True, blank=True)
    refreshing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse", "options_key"], name="queries_one_analysis_per_options"
            )
        ]

    def __str__(self) -> str:
        return f"{self.warehouse} index analysis at {self.computed_at}"


class LongExecution(models.Model):
    """One execution of a statement seen running long in pg_stat_activity by the
    sampling beat task. A statement cancelled by statement_timeout (or killed, or still
    running) never reaches pg_stat_statements, which records finished statements only:
    these samples are how the index advisor still weighs it."""

    warehouse = models.CharField(max_length=64)
    pid = models.IntegerField()
    started_at = models.DateTimeField()  # the statement's query_start
    fingerprint = models.CharField(max_length=16)  # pglast's: constants ignored
    query = models.TextField()
    elapsed_ms = models.FloatField()  # the longest it was seen running
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse", "pid", "started_at"], name="queries_one_row_per_execution"
            )
        ]
        indexes = [
            models.Index(fields=["warehouse", "fingerprint"]),
            models.Index(fields=["last_seen"]),
        ]

    def __str__(self) -> str:
        return f"{self.warehouse}:{self.pid} since {self.started_at} ({self.elapsed_ms:.0f} ms)"

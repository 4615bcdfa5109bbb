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

"""What the cache manager keeps: one stats snapshot per target per minute (the history charts)."""

from django.db import models


class StatsSnapshot(models.Model):
    target = models.CharField(max_length=100)
    # "" for the whole target; host:port for one node of a cluster or Sentinel group.
    node = models.CharField(max_length=200, blank=True, default="")
    taken_at = models.DateTimeField(db_index=True)
    hit_rate = models.FloatField(null=True, blank=True)  # since the previous snapshot
    keyspace_hits = models.BigIntegerField(default=0)
    keyspace_misses = models.BigIntegerField(default=0)
    used_memory = models.BigIntegerField(default=0)
    used_memory_peak = models.BigIntegerField(default=0)
    maxmemory = models.BigIntegerField(default=0)
    ops_per_sec = models.FloatField(default=0)
    evicted_keys = models.BigIntegerField(default=0)  # counter since Redis started
    expired_keys = models.BigIntegerField(default=0)
    keys = models.BigIntegerField(default=0)
    connected_clients = models.IntegerField(default=0)

    class Meta:
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["target", "-taken_at"], name="cache_snapshot_target_time")]

    def __str__(self) -> str:
        return f"{self.target} at {self.taken_at:%Y-%m-%d %H:%M}"


class KeyspaceAnalysis(models.Model):
    """One exact walk of a target's keyspace (every key of every primary), and its
    checkpoint: `progress` holds each node's SCAN cursor, so a stopped walk resumes."""

    RUNNING, COMPLETE, STOPPED = "running", "complete", "stopped"

    target = models.CharField(max_length=100)
    run = models.ForeignKey("jobs.Run", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, default=RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(default=0)  # time spent walking, over every attempt
    keys = models.BigIntegerField(default=0)
    memory = models.BigIntegerField(default=0)
    no_ttl = models.BigIntegerField(default=0)
    # {namespace: {"keys", "memory", "ttl": {bucket: n}, "types": {type: n}}}
    namespaces = models.JSONField(default=dict)
    types = models.JSONField(default=dict)
    biggest = models.JSONField(default=list)  # [{"key", "node", "type", "size", "pttl"}]
    progress = models.JSONField(default=dict)  # {node: {"cursor": "…", "done": bool}}
    # On a cluster: the slot layout the tallies were taken under (targets.SlotLayout as
    # JSON), and how many passes the walk took (a pass after slots moved starts over).
    slot_layout = models.JSONField(default=list, blank=True)
    passes = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["target", "-started_at"], name="cache_analysis_target")]

    def __str__(self) -> str:
        return f"{self.target} analysis of {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

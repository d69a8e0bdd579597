import re
import uuid

from django.conf import settings
from django.db import models

from logfleet import clock

# A config's log source: "*" for every source, or a source's name.
LOG_SOURCE_RE = re.compile(r"^(\*|[a-z0-9_-]{1,64})\Z")


class MetricConfig(models.Model):
    """Log-to-metric rules for the agents whose labels match `agent_selector`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="metric_configs")
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True, default="", max_length=1024)
    log_source = models.CharField(max_length=64, default="*")
    enabled = models.BooleanField(default=True)
    agent_selector = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=list)
    version = models.PositiveIntegerField(default=1)
    hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="metrics_config_unique_name")]

    def __str__(self):
        return self.name

    def selects(self, labels: dict) -> bool:
        return all(labels.get(key) == value for key, value in self.agent_selector.items())


class MetricType(models.TextChoices):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Series(models.Model):
    """One agent + metric name + label set. Keeps running totals for the Prometheus export, so
    that pruning old samples never makes a counter go backwards."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="series")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=MetricType.choices)
    labels = models.JSONField(default=dict)
    labels_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=clock.now)
    last_sample_at = models.DateTimeField(null=True, blank=True)
    # Counter: sum of increments. Gauge: latest value (by sample time). Histogram: count/sum/buckets.
    total = models.FloatField(default=0)
    last_value = models.FloatField(null=True, blank=True)
    histogram_count = models.BigIntegerField(default=0)
    histogram_sum = models.FloatField(default=0)
    histogram_buckets = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name", "agent_id", "id"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["agent", "name", "labels_hash"], name="metrics_series_unique_labels")
        ]
        indexes = [models.Index(fields=["organization", "name"])]

    def __str__(self):
        return f"{self.name}{self.labels}"


class Sample(models.Model):
    """A pushed sample. `ts` is Unix time in milliseconds (so that time buckets are integer
    arithmetic on every database); the table is written in bulk and pruned by retention."""

    id = models.BigAutoField(primary_key=True)
    # No constraint in the database: checking every sample's series at commit cost a quarter of a
    # push. A batch holds its agent's row until it commits (metrics.ingest.sql.agent_hold) and the
    # agent's deletion locks that row before its cascade collects (agents.services.agent_delete), so
    # the cascade deletes every sample a batch wrote.
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    ts = models.BigIntegerField()
    value = models.FloatField(null=True)
    count = models.BigIntegerField(null=True)
    buckets = models.JSONField(null=True)

    class Meta:
        indexes = [models.Index(fields=["series", "ts"], name="metrics_sample_series_ts")]

    def __str__(self):
        return f"{self.series_id}@{self.ts}"


class Rollup(models.Model):
    """Per agent, metric name and minute: sum, count, min and max of its counter and gauge samples.

    Written with the samples (same transaction), so time-bucketed queries at steps of whole
    minutes read a few rows per agent and minute instead of every sample.
    """

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    minute = models.BigIntegerField(help_text="Unix seconds, a multiple of 60")
    sum = models.FloatField()
    count = models.BigIntegerField()
    min = models.FloatField()
    max = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "name", "minute"], name="metrics_rollup_unique")]
        indexes = [models.Index(fields=["organization", "name", "minute"], name="metrics_rollup_org_name_min")]

    def __str__(self):
        return f"{self.name}@{self.minute}"


class MetricBatch(models.Model):
    """A `batch_id` an agent already pushed: a replay stores nothing again."""

    id = models.BigAutoField(primary_key=True)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    batch_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(default=clock.now)
    accepted = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "batch_id"], name="metrics_batch_unique")]
        indexes = [models.Index(fields=["received_at"])]

    def __str__(self):
        return f"{self.agent_id}/{self.batch_id}"

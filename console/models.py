from django.db import models

from connections.models import Integration

# Upper bounds (ms) of the duration buckets of a rollup; the last bucket has no bound.
DURATION_BUCKETS_MS = [5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000]
OUTCOME_FIELDS = ["success", "client_error", "rate_limited", "upstream_error", "network_error"]


class CallMinute(models.Model):
    """One minute of one integration's call log, rolled up by the scheduler for the dashboard's 24-hour window:
    calls per outcome class and a histogram of durations (one count per DURATION_BUCKETS_MS bucket, plus one)."""

    minute = models.DateTimeField()
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    success = models.PositiveIntegerField(default=0)
    client_error = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)
    upstream_error = models.PositiveIntegerField(default=0)
    network_error = models.PositiveIntegerField(default=0)
    durations = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minute", "integration"], name="console_callminute_minute_integration")]
        indexes = [models.Index(fields=["minute"])]

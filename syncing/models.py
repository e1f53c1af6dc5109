from django.db import models
from django.utils import timezone

from connections.models import Connection


class SyncState(models.Model):
    """Syncing of one model of one connection: on or off, when it is due, whether a run was asked for, who runs it.

    The row is the source of truth; a broker message only wakes a worker. A run needs the claim (`claim_id`,
    taken with a conditional UPDATE), so two workers or schedulers never run one pair at once. A claim whose
    heartbeat stopped is lost (its worker died) and may be taken over.
    """

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="sync_states")
    model = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True, help_text="Off: the model is not synced for this connection.")
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                        help_text="When the scheduler asks for the next run (empty: manual only).")
    requested_at = models.DateTimeField(null=True, blank=True, editable=False,
                                        help_text="A run was asked for and has not started yet.")
    requested_full = models.BooleanField(default=False, editable=False)
    requested_by = models.CharField(max_length=20, blank=True, editable=False)
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    claim_id = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Incremental runs ask for what changed since this moment: when the last successful run BEGAN.
    last_success_started_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["connection_id", "model"]
        constraints = [models.UniqueConstraint(fields=["connection", "model"], name="syncing_state_connection_model")]

    def __str__(self):
        return f"{self.connection_id} / {self.model}"


class SyncRun(models.Model):
    """One run of one model of one connection: what it fetched, what it changed, how it ended."""

    SYNCING, DONE, FAILED = "SYNCING", "DONE", "FAILED"
    PARTIALLY_SYNCED, PAUSED, DISABLED = "PARTIALLY_SYNCED", "PAUSED", "DISABLED"
    STATUSES = [(s, s) for s in (SYNCING, DONE, FAILED, PARTIALLY_SYNCED, PAUSED, DISABLED)]
    SUCCESSFUL = (DONE, PARTIALLY_SYNCED)

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="sync_runs")
    model = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=STATUSES, default=SYNCING)
    full = models.BooleanField(default=False, help_text="Fetched everything (and detected deletions).")
    trigger = models.CharField(max_length=20, blank=True, help_text="What asked for the run.")
    modified_since = models.DateTimeField(null=True, blank=True, help_text="Sent upstream (incremental runs).")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0, help_text="Every request sent upstream, retries included.")
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Records left out: no usable id, or not storable.")
    skipped_pages = models.PositiveIntegerField(default=0, help_text="Pages whose answer could not be read.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["connection", "model", "-started_at"])]

    def __str__(self):
        return f"{self.model} of connection {self.connection_id}: {self.status}"

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def counts(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "deleted": self.deleted,
                "skipped": self.skipped, "pages": self.pages, "requests": self.requests}


class Record(models.Model):
    """Our stored copy of one upstream record. `modified_at` moves only when our copy changes."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="sync_records")
    model = models.CharField(max_length=100)
    remote_id = models.CharField(max_length=255)
    data = models.JSONField()
    data_hash = models.CharField(max_length=32, editable=False)
    remote_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(default=timezone.now)
    remote_was_deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["modified_at", "id"]
        constraints = [models.UniqueConstraint(fields=["connection", "model", "remote_id"],
                                               name="syncing_record_connection_model_remote_id")]
        indexes = [models.Index(fields=["connection", "model", "modified_at", "id"])]

    def __str__(self):
        return f"{self.model} {self.remote_id}"

import uuid

from django.db import models

from connections.models import Connection, Function, Integration, Organization


class FunctionCall(models.Model):
    """One executed upstream call, redacted and size-capped. Calls refused before execution are not logged."""

    DIALECT_NATIVE = "native"
    DIALECT_INTEGRY = "integry"
    DIALECT_MERGE = "merge"
    DIALECT_UNIFIED = "unified"
    DIALECT_SYNC = "syncing"  # syncing traffic; "sync" would read as the synchronous passthrough mode
    DIALECT_MCP = "mcp"
    DIALECTS = [(d, d) for d in (DIALECT_NATIVE, DIALECT_INTEGRY, DIALECT_MERGE, DIALECT_UNIFIED, DIALECT_SYNC, DIALECT_MCP)]
    MODE_SYNC = "sync"
    MODE_ASYNC = "async"
    MODE_BACKGROUND = "background"
    MODES = [(m, m) for m in (MODE_SYNC, MODE_ASYNC, MODE_BACKGROUND)]

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="function_calls")
    connection = models.ForeignKey(Connection, on_delete=models.SET_NULL, null=True, blank=True, related_name="function_calls")
    integration = models.ForeignKey(Integration, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    function = models.ForeignKey(Function, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    dialect = models.CharField(max_length=20, choices=DIALECTS)
    mode = models.CharField(max_length=20, choices=MODES, default=MODE_SYNC)
    method = models.CharField(max_length=10)
    url = models.TextField()
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    request_body_truncated = models.BooleanField(default=False)
    request_size = models.PositiveIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    response_body_truncated = models.BooleanField(default=False)
    response_size = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["connection", "-created_at"]),
            models.Index(fields=["dialect", "-created_at"]),
            models.Index(fields=["response_status"]),
        ]

    def __str__(self):
        return f"{self.method} {self.url[:80]} → {self.response_status or self.error[:40]}"

    @property
    def succeeded(self):
        return self.response_status is not None and self.response_status < 400


class AsyncPassthroughRequest(models.Model):
    """An async passthrough receipt. The row is the source of truth; the broker message only wakes a worker."""

    PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
    STATUSES = [(s, s) for s in (PENDING, RUNNING, DONE, FAILED)]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="async_requests")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="async_requests")
    dialect = models.CharField(max_length=20, choices=FunctionCall.DIALECTS)
    request = models.JSONField(help_text="The request as the admin shows it: no body, secrets redacted.")
    # The envelope the worker sends (caller headers, query and body), encrypted; emptied when the job finishes.
    request_ciphertext = models.TextField(blank=True, default="", editable=False)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING, db_index=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    deadline_at = models.DateTimeField(help_text="Creation + the global deadline; queue wait included.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True,
                                           help_text="A retry (or a wait for a rate-limit permit) runs no sooner.")
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "async passthrough request"
        indexes = [models.Index(fields=["status", "claimed_at"])]

    def __str__(self):
        return f"{self.request.get('method')} {self.request.get('path')} ({self.status})"

    @property
    def method(self):
        return self.request.get("method", "")

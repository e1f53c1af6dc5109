from django.db import models

from connections.models import Connection, Function, Integration, Organization


class FunctionCall(models.Model):
    """One executed upstream call, redacted and size-capped. Calls refused before execution are not logged."""

    DIALECT_NATIVE = "native"
    DIALECT_INTEGRY = "integry"
    DIALECT_MERGE = "merge"
    DIALECT_UNIFIED = "unified"
    DIALECT_SYNC = "sync"
    DIALECTS = [(d, d) for d in (DIALECT_NATIVE, DIALECT_INTEGRY, DIALECT_MERGE, DIALECT_UNIFIED, DIALECT_SYNC)]
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

"""Passthrough: execute one upstream call for a connection, and keep the function-call log."""

from datetime import timedelta

from django.utils import timezone

from passthrough.models import FunctionCall


def function_calls_purge(older_than_days: int) -> int:
    """Delete log rows older than the retention period; returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = FunctionCall.objects.filter(created_at__lt=cutoff).delete()
    return deleted

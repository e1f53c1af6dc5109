"""Per-minute rollups of the call log (CallMinute), so the dashboard's 24-hour window reads 1,440 rows per
integration instead of every call. The last hour is always read from the log itself (exact)."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from console.models import DURATION_BUCKETS_MS, OUTCOME_FIELDS, CallMinute
from passthrough.admin import OUTCOMES
from passthrough.models import FunctionCall

KEPT = timedelta(days=1, hours=1)
# A call is logged when it ends; a minute is rolled up once every call that ended in it has surely committed.
SETTLE = timedelta(minutes=2)


def bucket_counts():
    """Count() per duration bucket, as aggregate expressions."""
    bounds = [0, *DURATION_BUCKETS_MS]
    counts = {f"b{i}": Count("id", filter=Q(duration_ms__gte=low, duration_ms__lt=high))
              for i, (low, high) in enumerate(zip(bounds, bounds[1:]))}
    return counts | {f"b{len(DURATION_BUCKETS_MS)}": Count("id", filter=Q(duration_ms__gte=DURATION_BUCKETS_MS[-1]))}


def rolled_up_until():
    """The end of the last rolled-up minute (None: nothing rolled up yet)."""
    last = CallMinute.objects.aggregate(last=Max("minute"))["last"]
    return last + timedelta(minutes=1) if last else None


def roll_up(now=None) -> int:
    """Roll up every settled minute not rolled up yet (at most the last day); drop rollups nobody reads. Returns the
    number of rows written."""
    now = now or timezone.now()
    until = (now - SETTLE).replace(second=0, microsecond=0)
    since = max(rolled_up_until() or until - KEPT, until - KEPT)
    if since >= until:
        return 0
    calls = FunctionCall.objects.filter(created_at__gte=since, created_at__lt=until, integration__isnull=False)
    rows = (calls.annotate(minute=TruncMinute("created_at")).values("minute", "integration")
            .annotate(**{key: Count("id", filter=condition) for key, (_, condition) in OUTCOMES.items()}, **bucket_counts()))
    buckets = range(len(DURATION_BUCKETS_MS) + 1)
    rollups = [CallMinute(minute=row["minute"], integration_id=row["integration"],
                          durations=[row[f"b{i}"] for i in buckets], **{key: row[key] for key in OUTCOME_FIELDS})
               for row in rows]
    with transaction.atomic():
        CallMinute.objects.bulk_create(rollups, ignore_conflicts=True)
        CallMinute.objects.filter(minute__lt=now - KEPT).delete()
    return len(rollups)


def bucket_percentile(counts: list[int], fraction: float) -> float | None:
    """The percentile of a duration histogram, interpolated linearly inside its bucket (the last bucket: its bound)."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = fraction * total, 0
    bounds = [0, *DURATION_BUCKETS_MS]
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i >= len(DURATION_BUCKETS_MS):
                return float(DURATION_BUCKETS_MS[-1])
            return bounds[i] + (bounds[i + 1] - bounds[i]) * (rank - seen) / count
        seen += count
    return float(DURATION_BUCKETS_MS[-1])

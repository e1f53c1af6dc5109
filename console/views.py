import hmac
import os

from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpResponse
from django.db.models import Count
from django.template.response import TemplateResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from connections.models import WebhookDelivery
from console.dashboard import dashboard
from passthrough.models import AsyncPassthroughRequest


def dashboard_view(request):
    """The operator dashboard (staff only: wrapped in the admin site's login check in urls.py)."""
    context = {**admin.site.each_context(request), "title": "Dashboard", **dashboard()}
    return TemplateResponse(request, "console/dashboard.html", context)


def metrics_view(request):
    """Prometheus text format. Off (404) unless METRICS_ENABLED; with METRICS_TOKEN, a scrape needs it as a bearer."""
    if not settings.METRICS_ENABLED:
        raise Http404
    expected = f"Bearer {settings.METRICS_TOKEN}".encode()
    if settings.METRICS_TOKEN and not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
        return HttpResponse("Unauthorized.\n", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry) + generate_latest(QUEUES), content_type=CONTENT_TYPE_LATEST)


class QueueDepth(Collector):
    """Async requests waiting or running, and webhook deliveries pending: read from their rows at scrape time (the
    rows are the queues' source of truth, whichever process scrapes)."""

    def collect(self):
        depth = GaugeMetricFamily("platform_queue_depth", "Jobs waiting or running, by queue and status.",
                                  labels=["queue", "status"])
        waiting = AsyncPassthroughRequest.objects.filter(status__in=[AsyncPassthroughRequest.PENDING,
                                                                     AsyncPassthroughRequest.RUNNING])
        counts = dict(waiting.values_list("status").annotate(n=Count("pk")))
        for status in (AsyncPassthroughRequest.PENDING, AsyncPassthroughRequest.RUNNING):
            depth.add_metric(["async_passthrough", status], counts.get(status, 0))
        pending = WebhookDelivery.objects.filter(status=WebhookDelivery.PENDING).count()
        depth.add_metric(["webhooks", WebhookDelivery.PENDING], pending)
        yield depth


QUEUES = CollectorRegistry(auto_describe=False)
QUEUES.register(QueueDepth())

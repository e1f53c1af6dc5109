import hmac
import os

from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from console.dashboard import dashboard


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
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

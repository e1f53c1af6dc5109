"""The benchmark's floor proxy: the least any Python proxy on Django can cost (issue 13).

A bare Django (no middleware, no database, no apps) with one view that reads the passthrough envelope and forwards
`GET <path>` to the upstream with a pooled urllib3 client, answering the upstream's status, headers and body as JSON —
the same request and answer shapes as our `POST /api/v1/passthrough`, without authentication, rate limits, SSRF
guard or call log. Served by gunicorn with the same settings as our `serve` (gthread, workers × threads given on the
command line by tests/bench/servers.py). BENCH_FLOOR_UPSTREAM is the upstream's base URL.
"""

import json
import os

import django
import urllib3
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], INSTALLED_APPS=[],
                   SECRET_KEY="bench-floor", USE_TZ=True)
django.setup()

UPSTREAM = os.environ["BENCH_FLOOR_UPSTREAM"].rstrip("/")
POOL = urllib3.PoolManager(maxsize=16, timeout=urllib3.Timeout(connect=10, read=55), retries=False)


def forward(request):
    envelope = json.loads(request.body)
    answer = POOL.request(envelope.get("method", "GET"), UPSTREAM + envelope["path"], preload_content=True)
    body = {"status": answer.status, "headers": dict(answer.headers), "body": answer.data.decode()}
    return HttpResponse(json.dumps(body), content_type="application/json")


urlpatterns = [path("api/v1/passthrough", forward)]
app = get_wsgi_application()

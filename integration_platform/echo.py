"""A local echo upstream for the demo catalog (`echo` integration): it answers what it received.

It lets `make run` show passthrough end to end with no third-party account. Not part of the API. One exception:
GET /echo/contacts answers a fixed list, so the demo's `contacts` sync model has records to sync.
"""

import base64

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt


DEMO_CONTACTS = [
    {"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.test", "updated_at": "2026-11-02T09:00:00Z"},
    {"id": "c-2", "name": "Grace Hopper", "email": "grace@example.test", "updated_at": "2026-11-03T10:30:00Z"},
    {"id": "c-3", "name": "Katherine Johnson", "email": "katherine@example.test", "updated_at": "2026-11-04T15:45:00Z"},
]


@csrf_exempt
def echo(request, path=""):
    if path == "contacts" and request.method == "GET":
        return JsonResponse({"results": DEMO_CONTACTS})
    body = request.body
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return JsonResponse({
        "method": request.method,
        "path": "/" + path,
        "query": list(request.GET.lists()),
        "headers": {k[5:].replace("_", "-").title(): v for k, v in request.META.items() if k.startswith("HTTP_")}
        | ({"Content-Type": request.content_type} if request.META.get("CONTENT_TYPE") else {}),
        "body": text,
        "body_encoding": encoding,
    })

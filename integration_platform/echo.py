"""A local echo upstream for the demo catalog (`echo` integration): it answers what it received.

It lets `make run` show passthrough end to end with no third-party account. Not part of the API.
"""

import base64

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def echo(request, path=""):
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

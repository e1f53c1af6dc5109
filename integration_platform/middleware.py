"""Refusals made before any view runs, each answered in the error shape of the surface the path belongs to."""

import io
from http import HTTPStatus

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse

NUL_MESSAGE = "NUL bytes are not allowed in URLs."
READ_SIZE = 64 * 1024


def surface_error(path: str, status: int, message: str, details=()) -> JsonResponse:
    """An error answer in the shape of the surface `path` belongs to (native, Merge, Unified, Integry)."""
    if path.startswith("/unified/"):
        body = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message}
    elif path.startswith("/merge/") or (path.startswith("/integry") and status != 400):
        body = {"detail": message}
    else:  # native, and Integry's 400
        body = {"error": message, "error_details": list(details) or [message]}
    return JsonResponse(body, status=status)


class RefuseNulBytes:
    """A NUL byte in the path or query string can reach no valid resource (PostgreSQL refuses it in text): answer
    400 here, once, instead of a 500 from whichever query meets it first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            return surface_error(request.path, 400, NUL_MESSAGE)
        return self.get_response(request)


def is_chunked(meta) -> bool:
    return "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()


class LimitRequestBody:
    """MAX_REQUEST_BODY_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE) for every request, before any parser reads the stream
    (DRF's parsers read it without Django's check): 413 in the surface's shape.

    A chunked body has no Content-Length, so Django would read it as empty. When the server de-chunked it and says
    so (`wsgi.input_terminated`, as gunicorn does), it is read here, up to the limit, and handed on as a body of
    known length.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # None: no limit
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # as Django reads it
        if limit is not None and length > limit:
            return self.too_large(request, limit)
        if is_chunked(request.META) and request.META.get("wsgi.input_terminated"):
            body = read_at_most(request.META["wsgi.input"], limit + 1 if limit is not None else None)
            if limit is not None and len(body) > limit:
                return self.too_large(request, limit)
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = LimitedStream(io.BytesIO(body), len(body))
        return self.get_response(request)

    @staticmethod
    def too_large(request, limit):
        return surface_error(request.path, 413, f"The request body is larger than the limit of {limit} bytes.")


def read_at_most(stream, size: int | None) -> bytes:
    """Up to `size` bytes of `stream` (all of it, with None), read in chunks."""
    chunks, total = [], 0
    while size is None or total < size:
        chunk = stream.read(READ_SIZE if size is None else min(READ_SIZE, size - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)

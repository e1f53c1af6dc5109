from django.http import JsonResponse

NUL_MESSAGE = "NUL bytes are not allowed in URLs."


def nul_refusal_body(path: str) -> dict:
    """The 400 body in the error shape of the surface `path` belongs to."""
    if path.startswith("/unified/"):
        return {"statusCode": 400, "error": "Bad Request", "message": NUL_MESSAGE}
    if path.startswith("/merge/"):
        return {"detail": NUL_MESSAGE}
    return {"error": "Invalid request.", "error_details": [NUL_MESSAGE]}  # native and Integry's 400


class RefuseNulBytes:
    """A NUL byte in the path or query string can reach no valid resource (PostgreSQL refuses it in text): answer
    400 here, once, instead of a 500 from whichever query meets it first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            return JsonResponse(nul_refusal_body(request.path), status=400)
        return self.get_response(request)

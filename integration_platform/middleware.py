from django.http import JsonResponse


class RefuseNulBytes:
    """A NUL byte in the path or query string can reach no valid resource (PostgreSQL refuses it in text): answer
    400 here, once, instead of a 500 from whichever query meets it first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "") or "\x00" in request.META.get("QUERY_STRING", ""):
            return JsonResponse({"error": "Invalid request.", "error_details": ["NUL bytes are not allowed in URLs."]}, status=400)
        return self.get_response(request)

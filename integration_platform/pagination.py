from rest_framework.pagination import CursorPagination


class NativeCursorPagination(CursorPagination):
    """`{next, previous, results}` with absolute `next`/`previous` URLs (null at the ends)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = ("-created_at", "-id")

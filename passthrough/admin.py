import json
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from integration_platform.metrics import outcome_of
from passthrough.models import AsyncPassthroughRequest, FunctionCall

# Outcome classes of a logged call: the triage filter, the dashboard and /metrics use the same ones.
OUTCOMES = {
    "success": ("Success (1xx-3xx)", Q(response_status__lt=400)),
    "client_error": ("Client error (4xx)", Q(response_status__gte=400, response_status__lt=500) & ~Q(response_status=429)),
    "rate_limited": ("Rate-limited (429)", Q(response_status=429)),
    "upstream_error": ("Upstream error (5xx)", Q(response_status__gte=500)),
    "network_error": ("Network error (no answer)", Q(response_status__isnull=True)),
}
FAILED = "failed"
FAILURE = Q(response_status__gte=400) | Q(response_status__isnull=True)
OUTCOME_COLOURS = {"success": "#2e7d32", "client_error": "#b26a00", "rate_limited": "#6a1b9a",
                   "upstream_error": "#c62828", "network_error": "#c62828"}
RECENT = {"15m": ("Last 15 minutes", timedelta(minutes=15)), "1h": ("Last hour", timedelta(hours=1)),
          "24h": ("Last 24 hours", timedelta(days=1)), "7d": ("Last 7 days", timedelta(days=7))}


def changelist_url(model, **filters) -> str:
    """The admin list of `model`, filtered (query-string lookups)."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def seconds(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def size_text(size: int, truncated: bool) -> str:
    return f"{size:,} bytes" + (" (the log keeps the first FUNCTION_CALL_BODY_LIMIT bytes)" if truncated else "")


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [(FAILED, "Any failure (4xx, 5xx, network)")] + [(key, label) for key, (label, _) in OUTCOMES.items()]

    def queryset(self, request, queryset):
        if self.value() == FAILED:
            return queryset.filter(FAILURE)
        return queryset.filter(OUTCOMES[self.value()][1]) if self.value() in OUTCOMES else queryset


class RecentFilter(admin.SimpleListFilter):
    title = "time range"
    parameter_name = "since"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in RECENT.items()]

    def queryset(self, request, queryset):
        if self.value() in RECENT:
            return queryset.filter(created_at__gte=timezone.now() - RECENT[self.value()][1])
        return queryset


class EvidenceAdmin(admin.ModelAdmin):
    """Rows that record what happened: viewed, never added, edited or deleted here (retention commands purge)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(FunctionCall)
class FunctionCallAdmin(EvidenceAdmin):
    """The call log, built for triage: what failed, where, for whom, and the upstream's answer one click away."""

    list_display = ["time", "status", "method", "short_url", "duration", "end_user", "integration", "surface",
                    "error_excerpt", "origin"]
    list_display_links = ["time"]
    list_filter = [OutcomeFilter, RecentFilter, "integration", "connection", "dialect", "mode", "method", "organization"]
    search_fields = ["connection__end_user_id", "=connection__id", "url", "error"]
    search_help_text = "End user id, connection id (exact), URL or error text."
    date_hierarchy = "created_at"
    list_select_related = ["organization", "integration", "connection", "function"]
    fieldsets = [
        (None, {"fields": ["time", "status", "duration", "error", "end_user", "organization", "integration", "origin_exact",
                           "dialect", "mode"]}),
        ("Request", {"fields": ["method", "url", "request_headers_json", "request_body", "request_size_text"]}),
        ("Response", {"fields": ["response_headers_json", "response_body", "response_size_text"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    @admin.display(description="Time", ordering="created_at")
    def time(self, obj):
        return format_html('<span style="white-space:nowrap">{}</span>', seconds(obj.created_at))

    @admin.display(description="Status", ordering="response_status")
    def status(self, obj):
        outcome = outcome_of(obj.response_status)
        text = obj.response_status or "network error"
        return format_html('<strong style="color:{}" title="{}">{}</strong>', OUTCOME_COLOURS[outcome],
                           OUTCOMES[outcome][0], text)

    @admin.display(description="URL")
    def short_url(self, obj):
        """Path and query (the host is the integration's), shortened; the whole (redacted) URL on hover."""
        parts = urlsplit(obj.url)
        short = parts.path + (f"?{parts.query}" if parts.query else "")
        return format_html('<span title="{}">{}</span>', obj.url, short if len(short) <= 40 else short[:37] + "...")

    @admin.display(description="Duration", ordering="duration_ms")
    def duration(self, obj):
        return f"{obj.duration_ms} ms"

    @admin.display(description="Connection / end user", ordering="connection__end_user_id")
    def end_user(self, obj):
        if obj.connection is None:
            return "-"
        url = reverse("admin:connections_connection_change", args=[obj.connection_id])
        return format_html('<a href="{}">#{} {}</a>', url, obj.connection_id, obj.connection.end_user_id)

    @admin.display(description="Dialect", ordering="dialect")
    def surface(self, obj):
        return obj.dialect

    @admin.display(description="Error")
    def error_excerpt(self, obj):
        return obj.error if len(obj.error) <= 60 else obj.error[:57] + "..."

    @admin.display(description="Part of")
    def origin(self, obj):
        """The async request or sync run this call was made for (the latest of its connection begun before it),
        else the function called."""
        if obj.mode == FunctionCall.MODE_ASYNC and obj.connection_id:
            url = changelist_url(AsyncPassthroughRequest, connection__id__exact=obj.connection_id,
                                 created_at__lte=obj.created_at.isoformat())
            return format_html('<a href="{}">async request</a>', url)
        if obj.dialect == FunctionCall.DIALECT_SYNC and obj.connection_id:
            from syncing.models import SyncRun  # syncing is above passthrough: looked up, never imported at load

            url = changelist_url(SyncRun, connection__id__exact=obj.connection_id,
                                 started_at__lte=obj.created_at.isoformat())
            return format_html('<a href="{}">sync run</a>', url)
        if obj.function_id:
            url = reverse("admin:connections_function_change", args=[obj.function_id])
            return format_html('<a href="{}">{}</a>', url, obj.function.name)
        return "-"

    @admin.display(description="Part of")
    def origin_exact(self, obj):
        """On a call's own page: the very async request or sync run that was running when the call was made."""
        during = Q(finished_at__isnull=True) | Q(finished_at__gte=obj.created_at)
        if obj.mode == FunctionCall.MODE_ASYNC and obj.connection_id:
            owner = (AsyncPassthroughRequest.objects.filter(during, connection_id=obj.connection_id,
                                                            created_at__lte=obj.created_at).order_by("-created_at").first())
        elif obj.dialect == FunctionCall.DIALECT_SYNC and obj.connection_id:
            from syncing.models import SyncRun  # syncing is above passthrough: looked up, never imported at load

            owner = (SyncRun.objects.filter(during, connection_id=obj.connection_id, started_at__lte=obj.created_at)
                     .order_by("-started_at").first())
        else:
            return self.origin(obj)
        if owner is None:
            return "-"
        meta = owner._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[owner.pk])
        return format_html('<a href="{}">{} {}</a>', url, meta.verbose_name, owner)

    @admin.display(description="Request size")
    def request_size_text(self, obj):
        return size_text(obj.request_size, obj.request_body_truncated)

    @admin.display(description="Response size")
    def response_size_text(self, obj):
        return size_text(obj.response_size, obj.response_body_truncated)

    @admin.display(description="Request headers")
    def request_headers_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.request_headers, indent=2))

    @admin.display(description="Response headers")
    def response_headers_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.response_headers, indent=2))


def attempts_of(request: AsyncPassthroughRequest):
    """The logged upstream calls of one async request: its connection's async calls while it ran."""
    calls = FunctionCall.objects.filter(connection_id=request.connection_id, mode=FunctionCall.MODE_ASYNC,
                                        created_at__gte=request.created_at)
    return calls.filter(created_at__lte=request.finished_at) if request.finished_at else calls


@admin.register(AsyncPassthroughRequest)
class AsyncPassthroughRequestAdmin(EvidenceAdmin):
    list_display = ["id", "organization", "connection", "method", "path", "status", "attempts", "last_error",
                    "next_attempt_at", "created_at", "finished_at"]
    list_filter = ["status", "dialect", "organization", ("connection", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=id", "error", "connection__end_user_id"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "connection__integration"]
    exclude = ["request", "result"]
    readonly_fields = ["last_error", "attempt_calls", "request_json", "result_json"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude] + self.readonly_fields

    @admin.display(description="Path")
    def path(self, obj):
        return obj.request.get("path", "")

    @admin.display(description="Last error")
    def last_error(self, obj):
        """The request's own error, else what its latest attempt got (a pending request waiting for a retry)."""
        if obj.error:
            return obj.error
        last = attempts_of(obj).order_by("-created_at").first()
        if last is None or outcome_of(last.response_status) == "success":
            return "-"
        reason = last.error or f"HTTP {last.response_status}"
        if obj.status == AsyncPassthroughRequest.PENDING and obj.next_attempt_at:
            return f"retrying: {reason}, next attempt at {seconds(obj.next_attempt_at)}"
        return reason

    @admin.display(description="Attempts in the call log")
    def attempt_calls(self, obj):
        url = changelist_url(FunctionCall, connection__id__exact=obj.connection_id, mode__exact=FunctionCall.MODE_ASYNC,
                             created_at__gte=obj.created_at.isoformat())
        return format_html('<a href="{}">{} logged call(s)</a>', url, attempts_of(obj).count())

    @admin.display(description="Request")
    def request_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps({k: v for k, v in obj.request.items() if k != "body"}, indent=2))

    @admin.display(description="Result")
    def result_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2)[:20000]) if obj.result else "-"

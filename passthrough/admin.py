import json

from django.contrib import admin
from django.utils.html import format_html

from passthrough.async_passthrough import async_passthrough_retry
from passthrough.models import AsyncPassthroughRequest, FunctionCall


@admin.register(FunctionCall)
class FunctionCallAdmin(admin.ModelAdmin):
    """Read-only: the log is evidence, not something to edit."""

    list_display = ["created_at", "organization", "integration", "connection", "dialect", "mode", "method",
                    "short_url", "response_status", "duration_ms"]
    list_filter = ["dialect", "mode", "method", "response_status", "integration", "organization"]
    search_fields = ["url", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "integration", "connection__integration"]
    exclude = ["request_headers", "response_headers"]
    readonly_fields = ["request_headers_json", "response_headers_json"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude] + self.readonly_fields

    @admin.display(description="URL")
    def short_url(self, obj):
        return obj.url if len(obj.url) <= 80 else obj.url[:77] + "..."

    @admin.display(description="Request headers")
    def request_headers_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.request_headers, indent=2))

    @admin.display(description="Response headers")
    def response_headers_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.response_headers, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AsyncPassthroughRequest)
class AsyncPassthroughRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "connection", "method", "path", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "dialect", "organization"]
    search_fields = ["id", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "connection__integration"]
    exclude = ["request", "result"]
    readonly_fields = ["request_json", "result_json"]
    actions = ["retry"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude] + self.readonly_fields

    @admin.display(description="Path")
    def path(self, obj):
        return obj.request.get("path", "")

    @admin.display(description="Request")
    def request_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps({k: v for k, v in obj.request.items() if k != "body"}, indent=2))

    @admin.display(description="Result")
    def result_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2)[:20000]) if obj.result else "-"

    @admin.action(description="Retry selected failed requests")
    def retry(self, request, queryset):
        retried = sum(async_passthrough_retry(item) for item in queryset)
        self.message_user(request, f"Queued {retried} request(s) again.")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

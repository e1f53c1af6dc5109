import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from connections.admin import ConnectionAdmin
from integration_platform.errors import PlatformError
from syncing import services
from syncing.models import Record, SyncRun, SyncState


def connections_sync(request, connections, *, full: bool, notify) -> None:
    """Ask for a run of every enabled model of each connection (the ConnectionAdmin actions)."""
    asked, refused = 0, []
    for connection in connections.select_related("integration", "organization"):
        try:
            services.sync_request(connection, full=full, trigger="admin")
            asked += 1
        except PlatformError as exc:
            refused.append(f"{connection.pk}: {exc.message}")
    kind = "Full resync" if full else "Sync"
    notify(request, f"{kind} asked for {asked} connection(s); it runs in a worker.")
    if refused:
        notify(request, "Not synced: " + "; ".join(refused), level=messages.WARNING)


@admin.action(description="Sync now (every enabled model)")
def sync_now(modeladmin, request, queryset):
    connections_sync(request, queryset, full=False, notify=modeladmin.message_user)


@admin.action(description="Full resync (fetch everything, detect deletions)")
def full_resync(modeladmin, request, queryset):
    connections_sync(request, queryset, full=True, notify=modeladmin.message_user)


# The connections app knows nothing of syncing: syncing adds its actions to the connection admin.
ConnectionAdmin.actions = [*ConnectionAdmin.actions, sync_now, full_resync]


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = ["connection", "model", "enabled", "next_sync_at", "requested_at", "heartbeat_at",
                    "last_success_started_at", "records_link"]
    list_filter = ["enabled", "model", "connection__integration"]
    list_editable = ["enabled"]
    list_select_related = ["connection__integration"]
    readonly_fields = ["connection", "model", "requested_at", "requested_full", "requested_by", "claim_id",
                       "heartbeat_at", "last_success_started_at"]
    actions = ["sync_now", "full_resync"]

    @admin.display(description="Records")
    def records_link(self, obj):
        url = reverse("admin:syncing_record_changelist") + f"?connection__id__exact={obj.connection_id}&model__exact={obj.model}"
        return format_html('<a href="{}">browse</a>', url)

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        self._ask(request, queryset, full=False)

    @admin.action(description="Full resync (fetch everything, detect deletions)")
    def full_resync(self, request, queryset):
        self._ask(request, queryset, full=True)

    def _ask(self, request, queryset, *, full):
        asked = 0
        for state in queryset.select_related("connection__integration"):
            try:
                services.sync_request(state.connection, [state.model], full=full, trigger="admin")
                asked += 1
            except PlatformError as exc:
                self.message_user(request, f"{state}: {exc.message} {' '.join(exc.details)}", level=messages.WARNING)
        self.message_user(request, f"Asked for {asked} sync(s); they run in a worker.")

    def has_add_permission(self, request):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "connection", "model", "status", "full", "trigger", "duration", "pages", "requests",
                    "added", "updated", "unchanged", "deleted", "skipped", "short_error"]
    list_filter = ["status", "full", "trigger", "model", "connection__integration"]
    search_fields = ["model", "error", "connection__end_user_id"]
    list_select_related = ["connection__integration"]
    date_hierarchy = "started_at"

    @admin.display(description="Duration (s)")
    def duration(self, obj):
        return obj.duration_s

    @admin.display(description="Error")
    def short_error(self, obj):
        return obj.error[:120]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    """The records browser: filter by connection and model."""

    list_display = ["remote_id", "model", "connection", "remote_updated_at", "modified_at", "remote_was_deleted"]
    list_filter = ["model", "remote_was_deleted", ("connection", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["remote_id"]
    list_select_related = ["connection__integration"]
    show_full_result_count = False  # counting every record of a big table on each page is slow
    readonly_fields = ["connection", "model", "remote_id", "data_json", "remote_updated_at", "created_at",
                       "modified_at", "remote_was_deleted"]
    exclude = ["data", "data_hash"]

    @admin.display(description="Data")
    def data_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

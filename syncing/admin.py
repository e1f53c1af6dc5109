import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from connections.admin import ConnectionAdmin, IntegrationForm
from integration_platform.errors import PlatformError
from passthrough.admin import EvidenceAdmin, changelist_url, seconds
from passthrough.models import FunctionCall
from syncing import services
from syncing.models import Record, SyncRun, SyncState
from syncing.sync_model_forms import SyncModelFormSet


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


@admin.action(description="Sync now (every enabled model)", permissions=["change"])
def sync_now(modeladmin, request, queryset):
    connections_sync(request, queryset, full=False, notify=modeladmin.message_user)


@admin.action(description="Full resync (fetch everything, detect deletions)", permissions=["change"])
def full_resync(modeladmin, request, queryset):
    connections_sync(request, queryset, full=True, notify=modeladmin.message_user)


# The connections app knows nothing of syncing: syncing adds its actions to the connection admin.
ConnectionAdmin.actions = [*ConnectionAdmin.actions, sync_now, full_resync]
IntegrationForm.entry_formsets["sync_models"] = SyncModelFormSet


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = ["connection", "model", "enabled", "latest_run", "next_sync_at", "requested_at", "heartbeat_at",
                    "last_success_started_at", "records_link"]
    list_filter = ["enabled", "model", "connection__integration"]
    list_editable = ["enabled"]
    list_select_related = ["connection__integration"]
    readonly_fields = ["connection", "model", "requested_at", "requested_full", "requested_by", "claim_id",
                       "heartbeat_at", "last_success_started_at"]
    actions = ["sync_now", "full_resync"]

    @admin.display(description="Latest run")
    def latest_run(self, obj):
        run = SyncRun.objects.filter(connection_id=obj.connection_id, model=obj.model).first()
        if run is None:
            return "manual — never run" if obj.next_sync_at is None else f"never run, first at {seconds(obj.next_sync_at)}"
        url = reverse("admin:syncing_syncrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a> {}', url, run.status, run_reason(run))

    @admin.display(description="Records")
    def records_link(self, obj):
        url = reverse("admin:syncing_record_changelist") + f"?connection__id__exact={obj.connection_id}&model__exact={obj.model}"
        return format_html('<a href="{}">browse</a>', url)

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now(self, request, queryset):
        self._ask(request, queryset, full=False)

    @admin.action(description="Full resync (fetch everything, detect deletions)", permissions=["change"])
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


def run_calls(run: SyncRun):
    """The logged upstream requests of one run: its connection's syncing calls while it ran."""
    calls = FunctionCall.objects.filter(connection_id=run.connection_id, dialect=FunctionCall.DIALECT_SYNC,
                                        created_at__gte=run.started_at)
    return calls.filter(created_at__lte=run.finished_at) if run.finished_at else calls


def run_reason(run: SyncRun) -> str:
    """Why a run is where it is: its error (while it waits to retry: "retrying: ..., next attempt at ...", written by
    the engine), or what a partial run skipped."""
    if run.error:
        return run.error
    if run.status == SyncRun.PARTIALLY_SYNCED:
        return (f"skipped {run.skipped} record(s) without a usable id or not storable, "
                f"and {run.skipped_pages} unreadable page(s)")
    return ""


@admin.register(SyncRun)
class SyncRunAdmin(EvidenceAdmin):
    list_display = ["started_at", "connection", "model", "status", "full", "trigger", "duration", "pages", "requests",
                    "added", "updated", "unchanged", "deleted", "skipped", "reason"]
    readonly_fields = ["reason", "requests_link"]
    list_filter = ["status", "full", "trigger", "model", "connection__integration",
                   ("connection", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["model", "error", "connection__end_user_id"]
    list_select_related = ["connection__integration"]
    date_hierarchy = "started_at"

    @admin.display(description="Duration (s)")
    def duration(self, obj):
        return obj.duration_s

    @admin.display(description="Error or reason")
    def reason(self, obj):
        return run_reason(obj)[:200]

    @admin.display(description="Requests in the call log")
    def requests_link(self, obj):
        url = changelist_url(FunctionCall, connection__id__exact=obj.connection_id,
                             dialect__exact=FunctionCall.DIALECT_SYNC, created_at__gte=obj.started_at.isoformat())
        return format_html('<a href="{}">{} logged request(s)</a>', url, run_calls(obj).count())


@admin.register(Record)
class RecordAdmin(EvidenceAdmin):
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

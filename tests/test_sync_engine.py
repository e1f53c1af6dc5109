"""Sync runs against the real paginated upstream (tests/sync_upstream.py): every pagination style, both
modified-since formats, full and incremental runs, deletions, failures mid-run, the call log and the webhook.
Runs start in the foreground (`services.sync_now`); the waits between retries are recorded, not spent."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from connections.models import Connection, WebhookDelivery
from passthrough.models import FunctionCall
from syncing import engine, services
from syncing.models import Record, SyncRun, SyncState
from tests.factories import make_connection, make_integration
from tests.sync_upstream import make_records, sync_model, sync_upstream, sync_upstream_server  # noqa: F401 (fixtures)

OLD = 1_600_000_000.0  # 2020-09-13: every record starts older than any run


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    """The seconds the engine waited between attempts (not actually waited)."""
    recorded = []
    monkeypatch.setattr(engine, "sleep", recorded.append)
    return recorded


def connect(tenant, upstream, *models) -> Connection:
    integration = make_integration(slug="upstream", base_url=upstream.url, sync_models=list(models) or [sync_model()])
    connection, _ = make_connection(tenant.organization, integration)
    return connection


def stored(connection, *, deleted=False) -> dict:
    return {r.remote_id: r for r in Record.objects.filter(connection=connection, model="contacts",
                                                          remote_was_deleted=deleted)}


def sent_since(upstream, param) -> set:
    return {entry["query"].get(param) for entry in upstream.log()}


def whole_seconds_iso(moment) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Pagination styles -----------------------------------------------------------------------------------------------

# 10 records, 3 per page: four pages (the last one short), or one request without pagination.
@pytest.mark.parametrize("style, requests", [("cursor", 4), ("page", 4), ("offset", 4), ("link", 4), ("next", 4),
                                             ("none", 1)])
def test_a_full_run_stores_every_record_through_each_pagination_style(alice, sync_upstream, style, requests):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream, sync_model(style))
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.full, run.added, run.pages, run.requests) == ("DONE", True, 10, requests, requests)
    records = stored(connection)
    assert sorted(records) == [f"c{i:04d}" for i in range(1, 11)]
    assert records["c0007"].data["name"] == "Contact 7"
    assert records["c0007"].remote_updated_at == datetime.fromtimestamp(OLD, dt_timezone.utc)


def test_page_style_ends_on_an_empty_page_when_the_last_page_is_full(alice, sync_upstream):
    sync_upstream.reset(make_records(9, updated_at=OLD))
    run = services.sync_now(connect(alice, sync_upstream, sync_model("page")), "contacts")
    assert (run.status, run.added, run.requests) == ("DONE", 9, 4)
    assert [entry["query"]["page"] for entry in sync_upstream.log()] == ["1", "2", "3", "4"]


def test_the_first_run_sends_no_modified_since(alice, sync_upstream):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    services.sync_now(connect(alice, sync_upstream), "contacts")
    assert sent_since(sync_upstream, "updated_after") == {None}


# --- Incremental runs ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style, param", [("cursor", "updated_after"), ("page", "since"), ("offset", "updated_after"),
                                          ("link", "updated_after"), ("next", "updated_after"),
                                          ("none", "updated_after")])
def test_an_incremental_run_fetches_what_changed_since_the_last_run_began(alice, sync_upstream, style, param):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream, sync_model(style))
    first = services.sync_now(connection, "contacts")
    before = stored(connection)
    sync_upstream.clear_log()
    now = timezone.now().timestamp()
    for record_id in ("c0002", "c0005", "c0009"):
        sync_upstream.update(record_id, name=f"Changed {record_id}", updated_at=now)
    second = services.sync_now(connection, "contacts")
    assert (second.status, second.full, second.modified_since) == ("DONE", False, first.started_at)
    assert (second.added, second.updated, second.unchanged, second.deleted) == (0, 3, 0, 0)
    # The moment the first run BEGAN, floored to the second, in the model's format (unix for `page`).
    expected = str(int(first.started_at.timestamp())) if style == "page" else whole_seconds_iso(first.started_at)
    assert sent_since(sync_upstream, param) == {expected}
    after = stored(connection)
    changed = {rid for rid in after if after[rid].modified_at != before[rid].modified_at}
    assert changed == {"c0002", "c0005", "c0009"}
    assert after["c0005"].data["name"] == "Changed c0005"


def test_a_model_without_modified_since_always_fetches_everything_and_counts_the_rest_unchanged(alice, sync_upstream):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream, sync_model("cursor", modified_since=None))
    services.sync_now(connection, "contacts")
    before = stored(connection)
    for record_id in ("c0001", "c0004", "c0010"):
        sync_upstream.update(record_id, name="Changed")
    run = services.sync_now(connection, "contacts")
    assert (run.full, run.added, run.updated, run.unchanged, run.deleted) == (True, 0, 3, 7, 0)
    after = stored(connection)
    assert {rid for rid in after if after[rid].modified_at == before[rid].modified_at} == set(before) - {
        "c0001", "c0004", "c0010"}
    assert all(after[rid].created_at == before[rid].created_at for rid in after)


def test_the_lookback_margin_moves_modified_since_earlier(alice, sync_upstream):
    sync_upstream.reset(make_records(3, updated_at=OLD))
    connection = connect(alice, sync_upstream, sync_model("cursor", lookback_seconds=3600))
    first = services.sync_now(connection, "contacts")
    sync_upstream.clear_log()
    second = services.sync_now(connection, "contacts")
    assert second.modified_since == first.started_at - timedelta(hours=1)
    assert sent_since(sync_upstream, "updated_after") == {whole_seconds_iso(first.started_at - timedelta(hours=1))}


def test_a_full_run_on_request_ignores_modified_since(alice, sync_upstream):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    services.sync_now(connection, "contacts")
    sync_upstream.clear_log()
    run = services.sync_now(connection, "contacts", full=True)
    assert (run.full, run.modified_since, run.unchanged) == (True, None, 4)
    assert sent_since(sync_upstream, "updated_after") == {None}


# --- Deletions ---------------------------------------------------------------------------------------------------------

def test_a_full_run_marks_records_the_upstream_no_longer_lists_as_deleted(alice, sync_upstream):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    services.sync_now(connection, "contacts")
    before = stored(connection)
    sync_upstream.delete("c0003")
    sync_upstream.delete("c0008")
    run = services.sync_now(connection, "contacts", full=True)
    assert (run.status, run.deleted, run.unchanged) == ("DONE", 2, 8)
    gone = stored(connection, deleted=True)
    assert set(gone) == {"c0003", "c0008"}
    assert all(gone[rid].modified_at > before[rid].modified_at for rid in gone)
    assert all(r.modified_at == before[rid].modified_at for rid, r in stored(connection).items())


def test_an_incremental_run_does_not_mark_deletions(alice, sync_upstream):
    sync_upstream.reset(make_records(5, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    services.sync_now(connection, "contacts")
    sync_upstream.delete("c0001")
    assert services.sync_now(connection, "contacts").deleted == 0
    assert not stored(connection, deleted=True)


def test_a_record_that_comes_back_is_no_longer_deleted(alice, sync_upstream):
    sync_upstream.reset(make_records(3, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    services.sync_now(connection, "contacts")
    sync_upstream.delete("c0002")
    services.sync_now(connection, "contacts", full=True)
    sync_upstream.reset(make_records(3, updated_at=OLD))
    run = services.sync_now(connection, "contacts", full=True)
    assert (run.updated, run.unchanged, run.deleted) == (1, 2, 0)
    assert not stored(connection, deleted=True)


# --- Failures mid-run --------------------------------------------------------------------------------------------------

def test_a_500_mid_run_keeps_the_stored_pages_and_the_next_run_completes(alice, sync_upstream, waits):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    sync_upstream.fault("/cursor/contacts", 500, query={"cursor": "c0006"}, times=99)
    connection = connect(alice, sync_upstream)
    failed = services.sync_now(connection, "contacts")
    assert failed.status == "FAILED"
    assert "HTTP 500 after 4 attempts" in failed.error
    assert (failed.pages, failed.requests, failed.added) == (2, 2 + 4, 6)
    assert waits == [1.0, 2.0, 4.0]  # exponential backoff
    assert len(stored(connection)) == 6
    sync_upstream.clear_faults()
    retried = services.sync_now(connection, "contacts")
    # Never succeeded before, so the next run is full again.
    assert (retried.status, retried.full, retried.added, retried.unchanged) == ("DONE", True, 4, 6)
    assert len(stored(connection)) == 10


def test_a_500_that_clears_on_retry_does_not_fail_the_run(alice, sync_upstream):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    sync_upstream.fault("/cursor/contacts", 503, query={"cursor": "c0003"}, times=1)
    run = services.sync_now(connect(alice, sync_upstream), "contacts")
    assert (run.status, run.added, run.pages, run.requests) == ("DONE", 10, 4, 5)


def test_a_429_is_retried_after_the_upstreams_retry_after(alice, sync_upstream, waits):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    sync_upstream.fault("/cursor/contacts", 429, query={"cursor": "c0003"}, times=1, headers={"Retry-After": "1"})
    connection = connect(alice, sync_upstream)
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.added, run.requests) == ("DONE", 10, 5)
    assert waits == [1.0]
    statuses = list(FunctionCall.objects.filter(connection=connection).order_by("id").values_list("response_status", flat=True))
    assert statuses == [200, 429, 200, 200, 200]


def test_a_client_error_is_not_retried(alice, sync_upstream, waits):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    sync_upstream.fault("/cursor/contacts", 403, times=1)
    run = services.sync_now(connect(alice, sync_upstream), "contacts")
    assert (run.status, run.requests, waits) == ("FAILED", 1, [])
    assert "HTTP 403" in run.error


def test_after_a_failed_run_the_next_incremental_run_starts_from_the_last_successful_start(alice, sync_upstream):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    good = services.sync_now(connection, "contacts")
    sync_upstream.fault("/cursor/contacts", 500, times=99)
    assert services.sync_now(connection, "contacts").status == "FAILED"
    sync_upstream.clear_faults()
    sync_upstream.clear_log()
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.full, run.modified_since) == ("DONE", False, good.started_at)
    assert sent_since(sync_upstream, "updated_after") == {whole_seconds_iso(good.started_at)}
    assert SyncState.objects.get(connection=connection).last_success_started_at == run.started_at


def test_an_unreachable_upstream_fails_the_run_after_retries(alice, sync_upstream, waits):
    from tests.servers import free_port

    integration = make_integration(slug="down", base_url=f"http://127.0.0.1:{free_port()}", sync_models=[sync_model()])
    connection, _ = make_connection(alice.organization, integration)
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.requests, len(waits)) == ("FAILED", 4, 3)
    assert "could not be reached" in run.error


def test_an_unreadable_page_is_skipped_and_the_run_is_partially_synced(alice, sync_upstream):
    sync_upstream.reset(make_records(7, updated_at=OLD))
    connection = connect(alice, sync_upstream, sync_model("broken"))
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.skipped_pages, run.pages, run.added) == ("PARTIALLY_SYNCED", 1, 3, 4)
    assert sorted(stored(connection)) == ["c0001", "c0002", "c0003", "c0007"]
    assert run.deleted == 0  # a partial full run cannot know what was deleted


def test_records_without_a_usable_id_are_skipped(alice, sync_upstream):
    sync_upstream.reset([*make_records(3, updated_at=OLD), {"id": "", "name": "no id", "updated_at": OLD}])
    connection = connect(alice, sync_upstream, sync_model("none"))
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.added, run.skipped) == ("PARTIALLY_SYNCED", 3, 1)


def test_a_connection_that_needs_reauthorization_pauses_the_run_without_calling_upstream(alice, sync_upstream):
    connection = connect(alice, sync_upstream)
    Connection.objects.filter(pk=connection.pk).update(status=Connection.STATUS_NEEDS_REAUTH)
    connection.refresh_from_db()
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.requests) == ("PAUSED", 0)
    assert "re-authorization" in run.error
    assert sync_upstream.log() == []


# --- Call log and webhooks -------------------------------------------------------------------------------------------

def test_sync_traffic_is_logged_one_row_per_upstream_request_without_bodies(alice, sync_upstream):
    sync_upstream.reset(make_records(7, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    run = services.sync_now(connection, "contacts")
    calls = FunctionCall.objects.filter(connection=connection)
    assert calls.count() == run.requests == 3
    call = calls.order_by("id").first()
    assert (call.dialect, call.mode, call.method, call.response_status) == ("sync", "background", "GET", 200)
    assert call.url.startswith(f"{sync_upstream.url}/cursor/contacts?limit=3")
    assert call.response_size > 0 and call.response_body == ""
    assert call.request_headers["Authorization"] == "<redacted>"


def test_bodies_of_sync_traffic_are_logged_when_the_setting_asks(alice, sync_upstream, settings):
    settings.SYNC_LOG_BODIES = True
    sync_upstream.reset(make_records(2, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    services.sync_now(connection, "contacts")
    assert "Contact 2" in FunctionCall.objects.get(connection=connection).response_body


def test_a_finished_run_sends_a_sync_completed_webhook_with_its_counts(alice, sync_upstream):
    alice.organization.webhook_url = "https://hooks.alice.test/merge"
    alice.organization.save()
    sync_upstream.reset(make_records(4, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    run = services.sync_now(connection, "contacts")
    delivery = WebhookDelivery.objects.get(event="sync.completed")
    assert delivery.payload["linked_account"]["id"] == str(connection.pk)
    data = delivery.payload["data"]
    assert (data["model"], data["status"], data["sync_run_id"], data["error"]) == ("contacts", "DONE", str(run.pk), None)
    assert data["counts"]["added"] == 4 and data["counts"]["requests"] == 2


def test_creating_a_connection_sends_connection_linked(alice, sync_upstream):
    alice.organization.webhook_url = "https://hooks.alice.test/merge"
    alice.organization.save()
    connection = connect(alice, sync_upstream)
    delivery = WebhookDelivery.objects.get(event="connection.linked")
    assert delivery.payload["linked_account"]["id"] == str(connection.pk)
    assert delivery.payload["data"] == {"connection_id": str(connection.pk), "integration_slug": "upstream",
                                        "sync_models": ["contacts"]}


def test_deleting_the_connection_during_a_run_stops_it_quietly(alice, sync_upstream):
    sync_upstream.reset(make_records(9, updated_at=OLD))
    connection = connect(alice, sync_upstream)

    def delete_connection(run):
        Connection.objects.filter(pk=connection.pk).delete()

    run = services.sync_now(connection, "contacts", progress=delete_connection)
    assert (run.status, run.pages) == ("FAILED", 1)
    assert not SyncRun.objects.exists() and not Record.objects.exists()

"""Sync runs against the real paginated upstream (tests/sync_upstream.py): every pagination style, both
modified-since formats, full and incremental runs, deletions, failures mid-run, the call log and the webhook.
Runs start in the foreground (`services.sync_now`); the waits between retries are recorded, not spent."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection as db_connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections import ratelimit
from connections.models import Connection, WebhookDelivery
from passthrough.models import FunctionCall
from syncing import engine, services
from syncing.models import Record, SyncRun, SyncState
from tests.factories import make_connection, make_integration
from tests.sync_upstream import make_records, sync_model

OLD = 1_600_000_000.0  # 2020-09-13: every record starts older than any run


@pytest.fixture(autouse=True)
def waits(monkeypatch, settings):
    """The seconds the engine waited between attempts (not actually waited), on a 1 s backoff base (1 min live)."""
    settings.SYNC_RETRY_BASE_SECONDS = 1.0
    recorded = []
    monkeypatch.setattr(engine, "sleep", recorded.append)
    return recorded


def backed_off(waits, expected) -> bool:
    """Each wait is its expected backoff plus at most the 25 % jitter."""
    return len(waits) == len(expected) and all(e <= w <= e * 1.25 + 0.05 for w, e in zip(waits, expected))


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


def test_a_page_is_stored_in_bulk_with_as_many_queries_for_100_records_as_for_3(alice, sync_upstream):
    integration = make_integration(slug="upstream", base_url=sync_upstream.url,
                                   sync_models=[sync_model("none", modified_since=None)])
    queries = []
    for size in (3, 100):
        connection, _ = make_connection(alice.organization, integration, end_user_id=f"user-{size}")
        for records in (make_records(size), [{**r, "name": "Changed"} for r in make_records(size)]):
            sync_upstream.reset(records)
            with CaptureQueriesContext(db_connection) as captured:
                run = services.sync_now(connection, "contacts")
            assert run.added + run.updated == size
            queries.append(len(captured))
    assert queries[:2] == queries[2:]  # first run (inserts) and second run (updates)


def synchronous_commit() -> str:
    with db_connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_on_postgresql_a_pages_commit_does_not_wait_for_the_disk_and_the_session_keeps_its_setting(
        alice, sync_upstream, transactional_db):
    if db_connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    sync_upstream.reset(make_records(7, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    run = services.sync_now(connection, "contacts")
    assert (run.status, synchronous_commit()) == ("DONE", "on")
    with transaction.atomic():
        engine._upsert(run, {"x1": ({}, "{}", "0" * 32, None)})
        assert synchronous_commit() == "off"
        transaction.set_rollback(True)


# --- Deletions ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["cursor", "page", "offset", "link", "next", "none"])
def test_a_full_run_marks_records_the_upstream_no_longer_lists_as_deleted(alice, sync_upstream, style):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream, sync_model(style))
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

# The query of each paginated style's third page (records 7-9 of 10, 3 per page).
THIRD_PAGE = {"cursor": {"cursor": "c0006"}, "page": {"page": "3"}, "offset": {"offset": "6"}, "link": {"page": "3"},
              "next": {"after": "c0006"}}
# (status, headers, retries, waits): the 429 also pauses the shared rate limiter for its Retry-After, in real time,
# so it is retried once, after one second.
MID_RUN_FAULTS = [(500, {}, 3, [1.0, 2.0, 4.0]),  # exponential backoff
                  (429, {"Retry-After": "1"}, 1, [1.0])]  # the upstream's Retry-After


@pytest.mark.parametrize("style", THIRD_PAGE)
@pytest.mark.parametrize("status, headers, retries, expected_waits", MID_RUN_FAULTS)
def test_a_failure_mid_run_keeps_the_stored_pages_and_the_next_run_completes(alice, sync_upstream, waits, settings,
                                                                            style, status, headers, retries,
                                                                            expected_waits):
    settings.SYNC_MAX_RETRIES = retries
    sync_upstream.reset(make_records(10, updated_at=OLD))
    sync_upstream.fault(f"/{style}/contacts", status, query=THIRD_PAGE[style], times=99, headers=headers)
    connection = connect(alice, sync_upstream, sync_model(style))
    failed = services.sync_now(connection, "contacts")
    assert failed.status == "FAILED"
    assert f"HTTP {status} after {retries + 1} attempts" in failed.error
    assert (failed.pages, failed.requests, failed.added) == (2, 2 + retries + 1, 6)
    assert backed_off(waits, expected_waits)
    assert len(stored(connection)) == 6
    sync_upstream.clear_faults()
    retried = services.sync_now(connection, "contacts")
    # Never succeeded before, so the next run is full again.
    assert (retried.status, retried.full, retried.added, retried.unchanged) == ("DONE", True, 4, 6)
    assert len(stored(connection)) == 10


@pytest.mark.parametrize("style", THIRD_PAGE)
@pytest.mark.parametrize("status, headers, expected_waits", [(503, {}, [1.0]), (429, {"Retry-After": "1"}, [1.0])])
def test_a_failure_mid_run_that_clears_on_retry_does_not_fail_the_run(alice, sync_upstream, waits, style, status,
                                                                      headers, expected_waits):
    sync_upstream.reset(make_records(10, updated_at=OLD))
    sync_upstream.fault(f"/{style}/contacts", status, query=THIRD_PAGE[style], times=1, headers=headers)
    connection = connect(alice, sync_upstream, sync_model(style))
    run = services.sync_now(connection, "contacts")
    assert (run.status, run.added, run.pages, run.requests) == ("DONE", 10, 4, 5)
    assert backed_off(waits, expected_waits)
    statuses = list(FunctionCall.objects.filter(connection=connection).order_by("id").values_list("response_status", flat=True))
    assert statuses == [200, 200, status, 200, 200]


def test_an_answer_over_the_size_cap_is_permanent_and_not_retried(alice, sync_upstream, waits, settings):
    """connections/retry_policy.py: an answer that came but cannot be used would come the same way again."""
    settings.SYNC_MAX_RETRIES = 3
    settings.OUTBOUND_MAX_RESPONSE_BYTES = 200
    sync_upstream.reset(make_records(10, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    run = services.sync_now(connection, "contacts")
    assert run.status == "FAILED"
    assert "larger than 200 bytes" in run.error and "attempts" not in run.error
    assert (run.requests, waits) == (1, [])


class LimiterSpy:
    """The shared rate limiter, recording the priority of every permit asked for; refuses the first `refusals`."""

    def __init__(self, real, refusals=0):
        self.real, self.refusals, self.priorities = real, refusals, []

    def acquire(self, connection, priority, *args, **kwargs):
        self.priorities.append(priority)
        if self.refusals:
            self.refusals -= 1
            raise ratelimit.PermitDelayed("No permit within the bound.", delay=2.5)
        return self.real.acquire(connection, priority, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_every_page_request_takes_a_background_permit_of_the_shared_limiter(alice, sync_upstream, monkeypatch):
    spy = LimiterSpy(ratelimit.limiter())
    monkeypatch.setattr(ratelimit, "limiter", lambda: spy)
    sync_upstream.reset(make_records(7, updated_at=OLD))
    run = services.sync_now(connect(alice, sync_upstream), "contacts")
    assert (run.status, run.requests) == ("DONE", 3)
    assert spy.priorities == [ratelimit.BACKGROUND] * 3


def test_a_permit_refused_by_our_limiter_is_waited_for_and_is_no_upstream_request(alice, sync_upstream, waits,
                                                                                  monkeypatch):
    spy = LimiterSpy(ratelimit.limiter(), refusals=1)
    monkeypatch.setattr(ratelimit, "limiter", lambda: spy)
    sync_upstream.reset(make_records(4, updated_at=OLD))
    run = services.sync_now(connect(alice, sync_upstream), "contacts")
    assert (run.status, run.added, run.requests, waits) == ("DONE", 4, 2, [2.5])
    assert len(sync_upstream.log()) == 2


def test_a_limiter_that_keeps_refusing_fails_the_run_after_the_bound(alice, sync_upstream, waits, monkeypatch, settings):
    settings.SYNC_RATE_LIMIT_MAX_WAIT_SECONDS = 6
    monkeypatch.setattr(ratelimit, "limiter", lambda: LimiterSpy(None, refusals=99))
    run = services.sync_now(connect(alice, sync_upstream), "contacts")
    assert (run.status, run.requests, waits) == ("FAILED", 0, [2.5, 2.5])
    assert "Rate limited" in run.error and sync_upstream.log() == []


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
    assert (call.dialect, call.mode, call.method, call.response_status) == ("syncing", "background", "GET", 200)
    assert call.url.startswith(f"{sync_upstream.url}/cursor/contacts?limit=3")
    assert call.response_size > 0 and call.response_body == ""
    assert call.request_headers["Authorization"] == "<redacted>"


def test_the_call_log_is_written_in_batches_during_the_run_and_completed_at_its_end(alice, sync_upstream,
                                                                                    monkeypatch):
    monkeypatch.setattr(engine, "CALL_LOG_BATCH", 2)
    monkeypatch.setattr(engine, "CALL_LOG_SECONDS", 3600)
    sync_upstream.reset(make_records(7, updated_at=OLD))
    connection = connect(alice, sync_upstream)
    logged = []
    run = services.sync_now(connection, "contacts",
                            progress=lambda run: logged.append(FunctionCall.objects.filter(connection=connection).count()))
    assert logged == [0, 2, 2]  # after each page: the batch of two is written with the second
    assert FunctionCall.objects.filter(connection=connection).count() == run.requests == 3


def test_a_failed_run_logs_every_attempt(alice, sync_upstream):
    sync_upstream.reset(make_records(7, updated_at=OLD))
    sync_upstream.fault("/cursor/contacts", 500, query={"cursor": "c0003"}, times=99)
    connection = connect(alice, sync_upstream)
    run = services.sync_now(connection, "contacts")
    statuses = list(FunctionCall.objects.filter(connection=connection).order_by("id").values_list("response_status", flat=True))
    assert (run.status, statuses) == ("FAILED", [200, 500, 500, 500, 500])


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
                                        "end_user_id": connection.end_user_id, "account_token": connection.account_token(),
                                        "sync_models": ["contacts"]}


def test_deleting_the_connection_during_a_run_stops_it_quietly(alice, sync_upstream):
    sync_upstream.reset(make_records(9, updated_at=OLD))
    connection = connect(alice, sync_upstream)

    def delete_connection(run):
        Connection.objects.filter(pk=connection.pk).delete()

    run = services.sync_now(connection, "contacts", progress=delete_connection)
    assert (run.status, run.pages) == ("FAILED", 1)
    assert not SyncRun.objects.exists() and not Record.objects.exists()

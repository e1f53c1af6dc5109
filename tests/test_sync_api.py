"""The native syncing API (records, sync-status, sync, sync-models) and the Merge-shaped service functions."""

import base64
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from connections.models import Connection
from passthrough.dialects.merge_serializers import MergeSyncStatusSerializer
from syncing import engine, services
from syncing.models import Record, SyncState
from tests.factories import make_connection, make_integration
from tests.sync_upstream import make_records, sync_model

OLD = 1_600_000_000.0
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(engine, "sleep", lambda seconds: None)


@pytest.fixture
def synced(alice, sync_upstream):
    """Alice's connection with 10 contacts synced (manual-only model)."""
    sync_upstream.reset(make_records(10, updated_at=OLD))
    integration = make_integration(slug="upstream", base_url=sync_upstream.url, categories=["crm"],
                                   sync_models=[sync_model()])
    connection, _ = make_connection(alice.organization, integration)
    services.sync_now(connection, "contacts")
    return connection


def records_url(connection, model="contacts"):
    return f"/api/v1/connections/{connection.pk}/records/{model}"


def walk(client, url, **params):
    """Every page from `url` following `next`; returns the pages' JSON."""
    pages = [client.get(url, params).json()]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    return pages


# --- Records -----------------------------------------------------------------------------------------------------------

def test_records_list_every_stored_record_with_utc_datetimes(alice, synced):
    response = alice.client.get(records_url(synced))
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    assert [r["remote_id"] for r in body["results"]] == [f"c{i:04d}" for i in range(1, 11)]
    record = body["results"][0]
    assert set(record) == {"id", "remote_id", "data", "remote_updated_at", "created_at", "modified_at",
                           "remote_was_deleted"}
    assert record["data"] == {"id": "c0001", "name": "Contact 1", "updated_at": "2020-09-13T12:26:40.000000Z"}
    assert record["remote_updated_at"] == "2020-09-13T12:26:40.000000Z"
    assert all(ISO_UTC.match(record[key]) for key in ("created_at", "modified_at"))
    assert record["remote_was_deleted"] is False


def test_records_are_paged_with_absolute_next_links_and_previous_goes_back(alice, synced):
    pages = walk(alice.client, records_url(synced), page_size=4)
    assert [len(page["results"]) for page in pages] == [4, 4, 2]
    assert pages[0]["next"].startswith("http://testserver/api/v1/connections/")
    assert "page_size=4" in pages[0]["next"]
    assert [r["remote_id"] for page in pages for r in page["results"]] == [f"c{i:04d}" for i in range(1, 11)]
    back = alice.client.get(pages[1]["previous"]).json()
    assert back["results"] == pages[0]["results"]
    assert back["previous"] is None


def test_a_walk_during_a_sync_skips_nothing_and_shows_changed_records_again(alice, synced, sync_upstream):
    first = alice.client.get(records_url(synced), {"page_size": 4}).json()
    sync_upstream.update("c0002", name="Changed early")  # on the page already read
    sync_upstream.update("c0009", name="Changed late")  # on a page not read yet
    services.sync_now(synced, "contacts", full=True)
    rest = walk(alice.client, first["next"])
    seen = [r["remote_id"] for page in [first, *rest] for r in page["results"]]
    assert set(seen) == {f"c{i:04d}" for i in range(1, 11)}
    assert seen[-2:] == ["c0002", "c0009"]  # moved behind the cursor, with their new data
    assert rest[-1]["results"][-1]["data"]["name"] == "Changed late"


def test_modified_after_is_strict(alice, synced, sync_upstream):
    sync_upstream.update("c0003", name="Changed", updated_at=timezone.now().timestamp())
    services.sync_now(synced, "contacts")
    changed = Record.objects.get(connection=synced, remote_id="c0003")
    untouched = Record.objects.get(connection=synced, remote_id="c0010")  # stored last by the first run
    at_untouched = alice.client.get(records_url(synced), {"modified_after": untouched.modified_at.isoformat()}).json()
    assert [r["remote_id"] for r in at_untouched["results"]] == ["c0003"]
    at_changed = alice.client.get(records_url(synced), {"modified_after": changed.modified_at.isoformat()}).json()
    assert at_changed["results"] == []
    just_before = changed.modified_at - timedelta(microseconds=1)
    assert len(alice.client.get(records_url(synced), {"modified_after": just_before.isoformat()}).json()["results"]) == 1


def test_deleted_records_are_listed_only_when_asked(alice, synced, sync_upstream):
    sync_upstream.delete("c0004")
    services.sync_now(synced, "contacts", full=True)
    default = [r["remote_id"] for r in alice.client.get(records_url(synced)).json()["results"]]
    assert "c0004" not in default and len(default) == 9
    everything = alice.client.get(records_url(synced), {"include_deleted": "true"}).json()["results"]
    assert [r["remote_id"] for r in everything if r["remote_was_deleted"]] == ["c0004"]


def test_page_size_is_capped_at_1000(alice, synced):
    Record.objects.bulk_create([Record(connection=synced, model="contacts", remote_id=f"x{i}", data={}, data_hash="")
                                for i in range(1005)])
    body = alice.client.get(records_url(synced), {"page_size": 5000}).json()
    assert len(body["results"]) == 1000 and body["next"]


def tampered_cursor(moment="2020-01-01T00:00:00+00:00", record_id=1, direction="n") -> str:
    raw = json.dumps({"t": moment, "i": record_id, "d": direction}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("params, field", [
    ({"page_size": 0}, "page_size"), ({"page_size": "x"}, "page_size"),
    ({"modified_after": "yesterday"}, "modified_after"),
    ({"modified_after": "0001-01-01T00:00:00+14:00"}, "modified_after"),
    ({"include_deleted": "maybe"}, "include_deleted"),
    ({"cursor": "not-a-cursor"}, "cursor"), ({"cursor": tampered_cursor(record_id=2**70)}, "cursor"),
    ({"cursor": tampered_cursor(record_id=True)}, "cursor"),
    ({"cursor": tampered_cursor(moment="0001-01-01T00:00:00+14:00")}, "cursor"),
    ({"cursor": tampered_cursor(moment="2020-01-01T00:00:00")}, "cursor"),
    ({"cursor": tampered_cursor(direction="x")}, "cursor"),
])
def test_invalid_query_parameters_are_400(alice, synced, params, field):
    response = alice.client.get(records_url(synced), params)
    assert response.status_code == 400
    assert any(detail.startswith(field) for detail in response.json()["error_details"])


@pytest.mark.parametrize("body", [[], "contacts", {"models": "contacts"}, {"models": [None]}, {"full": "maybe"}])
def test_a_malformed_sync_request_is_400(alice, synced, body):
    response = alice.client.post(f"/api/v1/connections/{synced.pk}/sync", body, format="json")
    assert response.status_code == 400
    assert SyncState.objects.get(connection=synced).requested_at is None


def test_an_undeclared_model_is_404(alice, synced):
    assert alice.client.get(records_url(synced, "deals")).status_code == 404


def test_another_organizations_connection_is_404_everywhere(alice, bob, synced):
    base = f"/api/v1/connections/{synced.pk}"
    assert bob.client.get(f"{base}/records/contacts").status_code == 404
    assert bob.client.get(f"{base}/sync-status").status_code == 404
    assert bob.client.post(f"{base}/sync", {}, format="json").status_code == 404
    assert bob.client.patch(f"{base}/sync-models/contacts", {"enabled": False}, format="json").status_code == 404
    assert SyncState.objects.get(connection=synced).enabled


def test_the_api_needs_an_api_key(synced):
    from rest_framework.test import APIClient

    assert APIClient().get(records_url(synced)).status_code == 401


# --- Sync status, sync, sync-models ------------------------------------------------------------------------------------

def test_sync_status_after_a_run(alice, synced):
    body = alice.client.get(f"/api/v1/connections/{synced.pk}/sync-status").json()
    [status] = body["results"]
    assert (status["model"], status["status"], status["last_sync_result"], status["is_initial_sync"]) == (
        "contacts", "DONE", "DONE", False)
    assert ISO_UTC.match(status["last_sync_start"]) and ISO_UTC.match(status["last_sync_finished"])
    assert status["next_sync_start"] is None  # manual only
    assert status["counts"] == {"added": 10, "updated": 0, "unchanged": 0, "deleted": 0, "skipped": 0, "pages": 4,
                                "requests": 4, "records": 10}


def test_sync_status_before_any_run_of_a_manual_model_is_paused_and_initial(alice, sync_upstream):
    integration = make_integration(slug="upstream", base_url=sync_upstream.url, sync_models=[sync_model()])
    connection, _ = make_connection(alice.organization, integration)
    [status] = alice.client.get(f"/api/v1/connections/{connection.pk}/sync-status").json()["results"]
    assert (status["status"], status["last_sync_result"], status["last_sync_start"], status["is_initial_sync"]) == (
        "PAUSED", None, None, True)


def test_a_scheduled_model_shows_its_next_sync(alice, sync_upstream):
    integration = make_integration(slug="upstream", base_url=sync_upstream.url,
                                   sync_models=[sync_model(frequency_seconds=3600)])
    connection, _ = make_connection(alice.organization, integration)
    run = services.sync_now(connection, "contacts")
    [status] = services.sync_statuses(connection)
    assert status["next_sync_start"] == services.iso(run.started_at + timedelta(hours=1))


def test_posting_sync_asks_for_a_run_and_answers_202(alice, synced):
    response = alice.client.post(f"/api/v1/connections/{synced.pk}/sync", {"models": ["contacts"], "full": True},
                                 format="json")
    assert response.status_code == 202
    assert response.json()["results"][0]["status"] == "SYNCING"
    state = SyncState.objects.get(connection=synced)
    assert state.requested_at is not None and state.requested_full and state.requested_by == "api"


def test_posting_sync_for_an_unknown_model_is_400(alice, synced):
    response = alice.client.post(f"/api/v1/connections/{synced.pk}/sync", {"models": ["deals"]}, format="json")
    assert response.status_code == 400
    assert SyncState.objects.get(connection=synced).requested_at is None


def test_posting_sync_for_an_unusable_connection_is_400(alice, synced):
    Connection.objects.filter(pk=synced.pk).update(status=Connection.STATUS_DISABLED)
    assert alice.client.post(f"/api/v1/connections/{synced.pk}/sync", {}, format="json").status_code == 400


def test_a_model_can_be_disabled_and_enabled_per_connection(alice, synced):
    url = f"/api/v1/connections/{synced.pk}/sync-models/contacts"
    response = alice.client.patch(url, {"enabled": False}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["enabled"]) == ("DISABLED", False)
    assert alice.client.post(f"/api/v1/connections/{synced.pk}/sync", {"models": ["contacts"]},
                             format="json").status_code == 400
    assert alice.client.patch(url, {"enabled": True}, format="json").json()["status"] == "DONE"


# --- Merge-shaped statuses (wired into the Merge dialect's sync-status and resync) ------------------------------------

def test_merge_sync_status_serializes_with_utc_datetimes(synced):
    [status] = MergeSyncStatusSerializer(services.sync_status_for(synced, "crm"), many=True).data
    assert (status["model_name"], status["model_id"], status["status"], status["last_sync_result"]) == (
        "contacts", "crm.contacts", "DONE", "DONE")
    assert status["is_initial_sync"] is False
    assert status["last_sync_start"].endswith("Z") and status["data_fresh_as_of"] == status["last_sync_start"]
    assert status["selective_sync_configurations_usage"] is None


def test_merge_resync_asks_for_every_enabled_model_and_reports_syncing(synced):
    [status] = services.resync(synced, "crm")
    assert status["status"] == "SYNCING"
    assert SyncState.objects.get(connection=synced).requested_by == "resync"


def test_merge_resync_of_an_unusable_connection_asks_for_nothing(synced):
    Connection.objects.filter(pk=synced.pk).update(status=Connection.STATUS_NEEDS_REAUTH)
    synced.refresh_from_db()
    [status] = services.resync(synced, "crm")
    assert status["status"] == "PAUSED"
    assert SyncState.objects.get(connection=synced).requested_at is None


def test_a_connection_that_syncs_nothing_has_no_statuses(alice_connection):
    connection, _ = alice_connection
    assert services.sync_status_for(connection, "crm") == [] and services.resync(connection, "crm") == []

"""The operator's syncing pages: runs with counts and errors, the records browser, sync actions on connections."""

import pytest
from django.urls import reverse

from connections.models import Connection, WebhookDelivery
from syncing import engine, services
from syncing.models import Record, SyncRun, SyncState
from tests.factories import make_connection, make_integration
from tests.sync_upstream import make_records, sync_model

OLD = 1_600_000_000.0


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(engine, "sleep", lambda seconds: None)


@pytest.fixture
def synced(alice, sync_upstream):
    sync_upstream.reset(make_records(4, updated_at=OLD))
    integration = make_integration(slug="upstream", base_url=sync_upstream.url, sync_models=[sync_model()])
    connection, _ = make_connection(alice.organization, integration, credentials={"token": "tok-SECRET-777"})
    services.sync_now(connection, "contacts")
    sync_upstream.fault("/cursor/contacts", 404, times=1)
    services.sync_now(connection, "contacts")
    return connection


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_sync_runs_show_counts_durations_and_errors(admin_client, synced):
    html = admin_client.get(url(SyncRun, "changelist")).content.decode()
    assert "DONE" in html and "FAILED" in html and "HTTP 404" in html
    failed = SyncRun.objects.get(status="FAILED")
    page = admin_client.get(url(SyncRun, "change", failed.pk))
    assert page.status_code == 200 and "HTTP 404" in page.content.decode()


def test_records_are_browsed_per_connection_and_model(admin_client, synced):
    response = admin_client.get(url(Record, "changelist"), {"connection__id__exact": synced.pk, "model__exact": "contacts"})
    html = response.content.decode()
    assert response.status_code == 200 and "c0001" in html and "c0004" in html
    record = Record.objects.get(remote_id="c0002")
    assert "Contact 2" in admin_client.get(url(Record, "change", record.pk)).content.decode()
    assert "tok-SECRET-777" not in html


def test_sync_states_link_to_their_records(admin_client, synced):
    html = admin_client.get(url(SyncState, "changelist")).content.decode()
    assert f"connection__id__exact={synced.pk}&amp;model__exact=contacts" in html


@pytest.mark.parametrize("action, full", [("sync_now", False), ("full_resync", True)])
def test_connection_actions_ask_for_a_sync(admin_client, synced, action, full):
    response = admin_client.post(url(Connection, "changelist"), {"action": action, "_selected_action": [synced.pk]},
                                 follow=True)
    assert response.status_code == 200
    state = SyncState.objects.get(connection=synced)
    assert state.requested_at is not None and state.requested_full is full and state.requested_by == "admin"


def test_a_model_can_be_disabled_from_the_states_list(admin_client, synced):
    state = SyncState.objects.get(connection=synced)
    response = admin_client.post(url(SyncState, "changelist"), {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": state.pk, "_save": "Save"})
    assert response.status_code == 302
    state.refresh_from_db()
    assert state.enabled is False


def test_a_connection_made_in_the_admin_is_linked_and_starts_its_first_sync(admin_client, alice, sync_upstream):
    alice.organization.webhook_url = "https://hooks.alice.test/merge"
    alice.organization.save()
    integration = make_integration(slug="upstream", base_url=sync_upstream.url,
                                   sync_models=[sync_model(frequency_seconds=3600), sync_model(name="manual")])
    response = admin_client.post(url(Connection, "add"), {
        "organization": alice.organization.pk, "integration": integration.pk, "end_user_id": "ada", "label": "",
        "end_user_email": "", "end_user_organization_name": "", "status": Connection.STATUS_ACTIVE,
        "status_detail": "", "new_credentials": '{"token": "tok-1"}'})
    assert response.status_code == 200  # the page showing the account token once
    connection = Connection.objects.get(end_user_id="ada")
    assert WebhookDelivery.objects.get(event="connection.linked").payload["linked_account"]["id"] == str(connection.pk)
    states = {state.model: state for state in SyncState.objects.filter(connection=connection)}
    assert (states["contacts"].requested_full, states["contacts"].requested_by) == (True, "link")
    assert states["manual"].requested_at is None

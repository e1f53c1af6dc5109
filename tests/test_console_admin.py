"""The operator console in the admin: a call log built for triage, evidence that cannot be edited, actions that need
their permission, edits that cannot go wrong, and a reason beside every failure."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from connections.models import ApiKey, Connection, Integration, Organization, WebhookAttempt, WebhookDelivery
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from syncing.models import Record, SyncRun, SyncState
from tests.factories import make_connection, make_function_call, make_integration
from tests.test_admin import admin_url, integration_form, secret_shown_once


@pytest.fixture
def viewer_client(db, client):
    """A staff user who may view every model and change none."""
    viewer = get_user_model().objects.create_user("viewer", "viewer@example.test", password=None, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    return client


@pytest.fixture
def calls(alice, integration):
    """One call of each outcome class, for two end users."""
    ada, _ = make_connection(alice.organization, integration, end_user_id="customer-42")
    bea, _ = make_connection(alice.organization, integration, end_user_id="customer-7")
    return {
        "success": make_function_call(alice.organization, ada, url="https://api.acme.test/v1/ok"),
        "client_error": make_function_call(alice.organization, bea, response_status=404, url="https://api.acme.test/v1/missing"),
        "rate_limited": make_function_call(alice.organization, ada, response_status=429, url="https://api.acme.test/v1/busy"),
        "upstream_error": make_function_call(alice.organization, bea, response_status=502, url="https://api.acme.test/v1/down"),
        "network_error": make_function_call(alice.organization, ada, response_status=None, url="https://api.acme.test/v1/void",
                                            error="Upstream unreachable: connection refused."),
    }


def listed_urls(response):
    html = response.content.decode()
    return {path for path in ("ok", "missing", "busy", "down", "void") if f"/v1/{path}<" in html}


@pytest.mark.django_db
class TestCallLog:
    @pytest.mark.parametrize("outcome, path", [("success", "ok"), ("client_error", "missing"), ("rate_limited", "busy"),
                                               ("upstream_error", "down"), ("network_error", "void")])
    def test_outcome_filter_lists_that_class_only(self, admin_client, calls, outcome, path):
        response = admin_client.get(admin_url(FunctionCall, "changelist"), {"outcome": outcome})
        assert response.status_code == 200
        assert listed_urls(response) == {path}

    def test_search_by_end_user_finds_their_calls(self, admin_client, calls):
        response = admin_client.get(admin_url(FunctionCall, "changelist"), {"q": "customer-42"})
        assert listed_urls(response) == {"ok", "busy", "void"}

    def test_search_by_error_text(self, admin_client, calls):
        response = admin_client.get(admin_url(FunctionCall, "changelist"), {"q": "connection refused"})
        assert listed_urls(response) == {"void"}

    def test_connection_filter(self, admin_client, calls):
        connection = calls["client_error"].connection
        response = admin_client.get(admin_url(FunctionCall, "changelist"), {"connection__id__exact": connection.pk})
        assert listed_urls(response) == {"missing", "down"}

    def test_time_range_filter(self, admin_client, calls):
        FunctionCall.objects.filter(pk=calls["success"].pk).update(created_at=timezone.now() - timedelta(hours=3))
        response = admin_client.get(admin_url(FunctionCall, "changelist"), {"since": "1h"})
        assert listed_urls(response) == {"missing", "busy", "down", "void"}

    def test_rows_show_seconds_status_class_end_user_and_error(self, admin_client, calls):
        html = admin_client.get(admin_url(FunctionCall, "changelist")).content.decode()
        assert timezone.localtime(calls["network_error"].created_at).strftime("%H:%M:%S") in html
        assert "network error" in html and "Upstream unreachable: connection refused." in html
        assert "customer-42" in html and "customer-7" in html
        assert 'title="Upstream error (5xx)">502<' in html
        assert reverse("admin:connections_connection_change", args=[calls["success"].connection_id]) in html

    def test_rows_link_to_their_function(self, admin_client, calls):
        html = admin_client.get(admin_url(FunctionCall, "changelist")).content.decode()
        assert reverse("admin:connections_function_change", args=[calls["success"].function_id]) in html

    def test_sync_traffic_links_to_its_runs(self, admin_client, calls):
        call = calls["success"]
        FunctionCall.objects.filter(pk=call.pk).update(dialect=FunctionCall.DIALECT_SYNC, mode=FunctionCall.MODE_BACKGROUND)
        SyncRun.objects.create(connection=call.connection, model="contacts", started_at=call.created_at - timedelta(seconds=1))
        html = admin_client.get(admin_url(FunctionCall, "changelist")).content.decode()
        link = reverse("admin:syncing_syncrun_changelist") + f"?connection__id__exact={call.connection_id}"
        assert link in html
        listed = admin_client.get(link + "&" + html.split(link + "&amp;", 1)[1].split('"', 1)[0].replace("&amp;", "&"))
        assert listed.status_code == 200 and "contacts" in listed.content.decode()

    def test_a_calls_page_links_to_the_very_run_it_was_made_for(self, admin_client, calls):
        call = calls["success"]
        FunctionCall.objects.filter(pk=call.pk).update(dialect=FunctionCall.DIALECT_SYNC, mode=FunctionCall.MODE_BACKGROUND)
        earlier = SyncRun.objects.create(connection=call.connection, model="contacts", finished_at=call.created_at - timedelta(seconds=5),
                                         started_at=call.created_at - timedelta(seconds=9))
        run = SyncRun.objects.create(connection=call.connection, model="contacts", started_at=call.created_at - timedelta(seconds=1))
        html = admin_client.get(admin_url(FunctionCall, "change", call.pk)).content.decode()
        assert admin_url(SyncRun, "change", run.pk) in html
        assert admin_url(SyncRun, "change", earlier.pk) not in html

    def test_a_calls_page_links_to_its_async_request(self, admin_client, calls):
        call = calls["success"]
        FunctionCall.objects.filter(pk=call.pk).update(mode=FunctionCall.MODE_ASYNC)
        request = AsyncPassthroughRequest.objects.create(
            organization=call.organization, connection=call.connection, dialect="native", request={"method": "GET"},
            deadline_at=timezone.now())
        AsyncPassthroughRequest.objects.filter(pk=request.pk).update(created_at=call.created_at - timedelta(seconds=2))
        html = admin_client.get(admin_url(FunctionCall, "change", call.pk)).content.decode()
        assert admin_url(AsyncPassthroughRequest, "change", request.pk) in html


EVIDENCE = [FunctionCall, AsyncPassthroughRequest, SyncRun, Record, WebhookDelivery]


@pytest.mark.django_db
class TestEvidenceIsReadOnly:
    @pytest.mark.parametrize("model", EVIDENCE, ids=lambda m: m.__name__)
    def test_no_add_or_delete(self, admin_client, model):
        from django.contrib import admin

        model_admin = admin.site._registry[model]
        request = type("Request", (), {"user": get_user_model().objects.get(username="admin")})()
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert "delete_selected" not in model_admin.get_actions(type("R", (), {"user": request.user, "GET": {}})())

    def test_call_cannot_be_deleted(self, admin_client, calls):
        call = calls["success"]
        assert admin_client.post(admin_url(FunctionCall, "delete", call.pk), {"post": "yes"}).status_code == 403
        assert FunctionCall.objects.filter(pk=call.pk).exists()


@pytest.mark.django_db
class TestActionsNeedTheirPermission:
    def run_action(self, client, model, action, pk):
        response = client.post(admin_url(model, "changelist"), {"action": action, "_selected_action": [pk]})
        assert response.status_code in (200, 302)
        return response

    def test_view_only_user_cannot_revoke_a_key(self, viewer_client, alice):
        assert 'value="revoke"' not in viewer_client.get(admin_url(ApiKey, "changelist")).content.decode()
        self.run_action(viewer_client, ApiKey, "revoke", alice.api_key.pk)
        alice.api_key.refresh_from_db()
        assert alice.api_key.revoked_at is None

    def test_view_only_user_cannot_replay_a_webhook(self, viewer_client, alice):
        delivery = WebhookDelivery.objects.create(organization=alice.organization, event="e", url="https://h.test",
                                                  payload={}, status=WebhookDelivery.FAILED, attempts=6)
        self.run_action(viewer_client, WebhookDelivery, "replay", delivery.pk)
        assert WebhookDelivery.objects.count() == 1

    @pytest.mark.parametrize("action", ["sync_now", "full_resync"])
    def test_view_only_user_cannot_sync(self, viewer_client, alice_connection, monkeypatch, action):
        from syncing import services

        asked = []
        monkeypatch.setattr(services, "sync_request", lambda *a, **k: asked.append(a))
        connection, _ = alice_connection
        self.run_action(viewer_client, Connection, action, connection.pk)
        assert asked == []

    def test_view_only_user_cannot_rotate_the_webhook_secret(self, viewer_client, alice):
        before = alice.organization.webhook_secret_ciphertext
        self.run_action(viewer_client, Organization, "rotate_webhook_secret", alice.organization.pk)
        alice.organization.refresh_from_db()
        assert alice.organization.webhook_secret_ciphertext == before

    def test_rotating_the_webhook_secret_shows_it_once_and_keeps_the_old_one_for_a_day(self, admin_client, alice):
        old = alice.organization.webhook_secret()
        response = self.run_action(admin_client, Organization, "rotate_webhook_secret", alice.organization.pk)
        alice.organization.refresh_from_db()
        new = alice.organization.webhook_secret()
        assert new != old and secret_shown_once(response, admin_client, r"whsec_[A-Za-z0-9+/=]+") == new
        assert alice.organization.webhook_previous_secret_expires_at - timezone.now() > timedelta(hours=23)

    def test_a_user_with_the_change_permission_can_revoke(self, client, alice):
        user = get_user_model().objects.create_user("keeper", password=None, is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=["view_apikey", "change_apikey"]))
        client.force_login(user)
        self.run_action(client, ApiKey, "revoke", alice.api_key.pk)
        alice.api_key.refresh_from_db()
        assert alice.api_key.revoked_at is not None


@pytest.mark.django_db
class TestUnsafeEditsAreRefused:
    def test_api_key_organization_cannot_be_changed(self, admin_client, alice, bob):
        page = admin_client.get(admin_url(ApiKey, "change", alice.api_key.pk)).content.decode()
        assert 'name="organization"' not in page
        admin_client.post(admin_url(ApiKey, "change", alice.api_key.pk), {"organization": bob.organization.pk, "name": "x"})
        alice.api_key.refresh_from_db()
        assert alice.api_key.organization == alice.organization

    def test_a_revoked_key_cannot_be_revived(self, admin_client, alice):
        ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now())
        admin_client.post(admin_url(ApiKey, "change", alice.api_key.pk), {"name": "x", "revoked_at_0": "", "revoked_at_1": ""})
        alice.api_key.refresh_from_db()
        assert alice.api_key.revoked_at is not None

    def test_api_key_organization_is_chosen_on_add(self, admin_client):
        assert 'name="organization"' in admin_client.get(admin_url(ApiKey, "add")).content.decode()

    @pytest.mark.parametrize("url", ["http://127.0.0.1:9/hooks", "http://[::1]/hooks", "http://localhost/hooks",
                                     "http://169.254.169.254/latest"])
    def test_webhook_url_the_sender_would_refuse_is_refused(self, admin_client, network_guard, url):
        response = admin_client.post(admin_url(Organization, "add"), {"name": "globex", "webhook_url": url})
        assert response.status_code == 200
        html = response.content.decode()
        assert "WEBHOOK_ALLOW_PRIVATE_URLS" in html
        assert not Organization.objects.filter(name="globex").exists()

    def test_private_webhook_url_is_accepted_when_the_operator_allows_it(self, admin_client, settings):
        settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
        response = admin_client.post(admin_url(Organization, "add"), {"name": "globex", "webhook_url": "http://127.0.0.1:9/h"})
        assert response.status_code == 302
        assert Organization.objects.get(name="globex").webhook_url == "http://127.0.0.1:9/h"


@pytest.mark.django_db
class TestReasons:
    def test_pending_async_request_after_an_upstream_500_shows_it_and_links_its_attempts(self, admin_client, alice_connection):
        connection, _ = alice_connection
        request = AsyncPassthroughRequest.objects.create(
            organization=connection.organization, connection=connection, dialect="native",
            request={"method": "GET", "path": "/x"}, attempts=1, deadline_at=timezone.now() + timedelta(minutes=5),
            next_attempt_at=timezone.now() + timedelta(minutes=1))
        make_function_call(connection.organization, connection, mode=FunctionCall.MODE_ASYNC, response_status=500)
        html = admin_client.get(admin_url(AsyncPassthroughRequest, "change", request.pk)).content.decode()
        assert "retrying: HTTP 500, next attempt at" in html
        assert "1 logged call(s)" in html
        assert "retrying: HTTP 500" in admin_client.get(admin_url(AsyncPassthroughRequest, "changelist")).content.decode()

    def test_partially_synced_run_names_what_was_skipped(self, admin_client, alice_connection):
        connection, _ = alice_connection
        SyncRun.objects.create(connection=connection, model="contacts", status=SyncRun.PARTIALLY_SYNCED, skipped=3,
                               skipped_pages=1, finished_at=timezone.now())
        html = admin_client.get(admin_url(SyncRun, "changelist")).content.decode()
        assert "skipped 3 record(s) without a usable id or not storable, and 1 unreadable page(s)" in html

    def test_a_runs_page_links_its_requests_in_the_call_log(self, admin_client, alice_connection):
        connection, _ = alice_connection
        run = SyncRun.objects.create(connection=connection, model="contacts", started_at=timezone.now() - timedelta(minutes=8))
        make_function_call(connection.organization, connection, dialect=FunctionCall.DIALECT_SYNC,
                           mode=FunctionCall.MODE_BACKGROUND, response_status=503)
        assert "1 logged request(s)" in admin_client.get(admin_url(SyncRun, "change", run.pk)).content.decode()

    def test_manual_model_never_run_says_so(self, admin_client, alice_connection):
        connection, _ = alice_connection
        SyncState.objects.create(connection=connection, model="manual", next_sync_at=None)
        html = admin_client.get(admin_url(SyncState, "changelist")).content.decode()
        assert "manual — never run" in html

    def test_failing_webhook_delivery_shows_its_last_error(self, admin_client, alice):
        delivery = WebhookDelivery.objects.create(organization=alice.organization, event="e", url="https://h.test",
                                                  payload={}, attempts=2)
        WebhookAttempt.objects.create(delivery=delivery, number=1, error="Receiver answered HTTP 500.")
        WebhookAttempt.objects.create(delivery=delivery, number=2, error="Upstream timed out.")
        html = admin_client.get(admin_url(WebhookDelivery, "changelist")).content.decode()
        assert "Upstream timed out." in html


def test_async_request_attempt_link_lists_its_calls(admin_client, alice_connection):
    connection, _ = alice_connection
    request = AsyncPassthroughRequest.objects.create(
        organization=connection.organization, connection=connection, dialect="native",
        request={"method": "GET", "path": "/x"}, deadline_at=timezone.now() + timedelta(minutes=5))
    make_function_call(connection.organization, connection, mode=FunctionCall.MODE_ASYNC, url="https://api.acme.test/v1/attempt")
    html = admin_client.get(admin_url(AsyncPassthroughRequest, "change", request.pk)).content.decode()
    link = html.split('<a href="' + admin_url(FunctionCall, "changelist"), 1)[1].split('"', 1)[0].replace("&amp;", "&")
    listed = admin_client.get(admin_url(FunctionCall, "changelist") + link)
    assert listed.status_code == 200 and "/v1/attempt<" in listed.content.decode()


def test_syncing_traffic_logged_as_sync_is_renamed_by_the_migration(transactional_db):
    from django.db import connection as db
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("passthrough", "0005_async_request_envelope_encrypted")], [("passthrough", "0006_dialect_sync_renamed_syncing")]
    executor = MigrationExecutor(db)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    organization = Organization.objects.create(name="old")  # connections stays migrated: today's model
    call = apps.get_model("passthrough", "FunctionCall").objects.create(
        organization_id=organization.pk, dialect="sync", mode="background", method="GET", url="https://x.test",
        started_at=timezone.now())
    executor = MigrationExecutor(db)
    executor.loader.build_graph()
    executor.migrate(after)
    assert FunctionCall.objects.get(pk=call.pk).dialect == FunctionCall.DIALECT_SYNC == "syncing"
    executor = MigrationExecutor(db)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
class TestStructuredRateLimits:
    def test_windows_are_written_as_lines(self, admin_client):
        form = integration_form(rate_limits="100 per 10 s\n50 per 60 s per connection\n")
        assert admin_client.post(admin_url(Integration, "add"), form).status_code == 302
        assert Integration.objects.get(slug="globex").rate_limits == [
            {"requests": 100, "per_seconds": 10}, {"requests": 50, "per_seconds": 60, "per": "connection"}]

    def test_stored_windows_are_shown_as_lines(self, admin_client):
        integration = make_integration(slug="globex", rate_limits=[{"requests": 5, "per_seconds": 0.5, "per": "connection"}])
        html = admin_client.get(admin_url(Integration, "change", integration.pk)).content.decode()
        assert "5 per 0.5 s per connection</textarea>" in html

    @pytest.mark.parametrize("text, error", [
        ("100 every minute", 'rate_limits[0]: Write &quot;N per S s&quot;'),
        ("0 per 1 s", "rate_limits[0]: Must be"),
    ])
    def test_bad_windows_are_refused(self, admin_client, text, error):
        response = admin_client.post(admin_url(Integration, "add"), integration_form(rate_limits=text))
        assert response.status_code == 200
        assert error in response.content.decode()
        assert not Integration.objects.filter(slug="globex").exists()


@pytest.mark.django_db
def test_every_list_filter_choice_and_a_search_render_on_every_admin_list(admin_client, calls, alice):
    """Realistic rows everywhere, then every link of every filter sidebar, followed."""
    import re

    from django.contrib import admin

    connection = calls["success"].connection
    SyncRun.objects.create(connection=connection, model="contacts", status=SyncRun.FAILED, error="HTTP 500")
    SyncState.objects.create(connection=connection, model="contacts")
    Record.objects.create(connection=connection, model="contacts", remote_id="c-1", data={"id": "c-1"})
    AsyncPassthroughRequest.objects.create(organization=alice.organization, connection=connection, dialect="native",
                                           request={"method": "GET", "path": "/x"}, deadline_at=timezone.now())
    WebhookDelivery.objects.create(organization=alice.organization, event="e", url="https://h.test", payload={})
    reverse("admin:index")  # loads the URLconf, which unregisters django_dramatiq's task table
    for model, model_admin in list(admin.site._registry.items()):
        url = admin_url(model, "changelist")
        html = admin_client.get(url).content.decode()
        assert "changelist" in html, model
        sidebar = html.split('id="changelist-filter"', 1)[1] if 'id="changelist-filter"' in html else ""
        for query in set(re.findall(r'href="(\?[^"]*)"', sidebar)):
            response = admin_client.get(url + query.replace("&amp;", "&"))
            assert response.status_code == 200, (model, query)
        if model_admin.search_fields:
            assert admin_client.get(url, {"q": "customer-42"}).status_code == 200, model


def test_index_hides_dramatiqs_task_table_and_view_site_opens_the_api_docs(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "/admin/django_dramatiq/" not in html
    assert 'href="/api/docs/"' in html


def test_a_sync_run_waiting_to_retry_says_why_and_until_when(alice, sync_upstream, monkeypatch):
    """While the engine sleeps before a retry, the run shows the reason and the next attempt, and the failed attempt
    is in the call log; a run that then succeeds keeps no error."""
    from syncing import engine, services
    from tests.sync_upstream import make_records, sync_model

    seen = []

    def sleep(seconds):
        run = SyncRun.objects.get()
        seen.append((run.error, FunctionCall.objects.filter(response_status=503).count()))

    monkeypatch.setattr(engine, "sleep", sleep)
    sync_upstream.reset(make_records(2))
    integration = make_integration(slug="upstream", base_url=sync_upstream.url, sync_models=[sync_model()])
    connection, _ = make_connection(alice.organization, integration)
    sync_upstream.fault("/cursor/contacts", 503, times=1)
    services.sync_now(connection, "contacts")
    [(error, logged)] = seen
    assert error.startswith("retrying: HTTP 503, next attempt at ") and logged == 1
    run = SyncRun.objects.get()
    assert (run.status, run.error) == (SyncRun.DONE, "")

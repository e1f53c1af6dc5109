"""Outbound webhooks (spec/webhooks.md): Standard Webhooks signatures checked with the `standardwebhooks` package, as a
receiver would, the Merge signature kept, secret rotation with its 24 h overlap, the settings API, and the retry rule.
"""

import base64
import hashlib
import hmac
import importlib
from datetime import timedelta
from unittest import mock

import pytest
from django.apps import apps
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connections import webhooks
from connections.models import Organization, WebhookDelivery
from tests.servers import recording_server


@pytest.fixture
def private_urls(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True


def deliver(organization, url, statuses=(200,), attempts=1, event="async_passthrough.completed"):
    """Send one event to a local receiver answering `statuses`; returns (delivery, requests received)."""
    with recording_server(statuses=statuses) as (receiver, received):
        Organization.objects.filter(pk=organization.pk).update(webhook_url=receiver)
        organization.refresh_from_db()
        with mock.patch("connections.webhooks._enqueue"):
            delivery = webhooks.webhook_send(organization, event, data={"n": 1})
            for _ in range(attempts):
                webhooks.webhook_deliver(delivery.pk)
    delivery.refresh_from_db()
    return delivery, received


def rotate(tenant) -> str:
    response = tenant.client.post("/api/v1/webhook/secret")
    assert response.status_code == 201
    return response.json()["secret"]


# --- Secrets -------------------------------------------------------------------------------------------------------

def test_every_organization_gets_a_standard_webhooks_secret_when_it_is_created(db):
    secret = Organization.objects.create(name="fresh").webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24


def test_the_data_migration_gives_existing_organizations_a_secret(db):
    Organization.objects.create(name="old")
    Organization.objects.filter(name="old").update(webhook_secret_ciphertext="")  # as before secrets were mandatory
    migration = importlib.import_module("connections.migrations.0006_integration_pause_and_standard_webhooks")
    migration.give_every_organization_a_webhook_secret(apps, None)
    assert Organization.objects.get(name="old").webhook_secret().startswith("whsec_")


def test_nothing_is_sent_signed_with_an_empty_key(alice, private_urls):
    Organization.objects.filter(pk=alice.organization.pk).update(webhook_secret_ciphertext="")
    delivery, received = deliver(alice.organization, None)
    assert received == []
    assert delivery.status == "failed"
    assert "no webhook secret" in delivery.attempt_log.get().error


# --- Each delivery -------------------------------------------------------------------------------------------------

def test_a_receiver_verifies_a_delivery_with_the_standardwebhooks_library(alice, private_urls):
    secret = rotate(alice)
    _, (request,) = deliver(alice.organization, None)
    headers = request["headers"]
    assert Webhook(secret).verify(request["body"], headers)["data"] == {"n": 1}
    assert headers["webhook-id"] == str(WebhookDelivery.objects.get().pk)
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 300
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request["body"].replace(b'"n":1', b'"n":2'), headers)
    with pytest.raises(WebhookVerificationError):  # a captured delivery replayed later is refused by its timestamp
        Webhook(secret).verify(request["body"], {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 600)})


def test_the_merge_signature_is_still_sent_for_merge_sdk_users(alice, private_urls):
    secret = rotate(alice)
    _, (request,) = deliver(alice.organization, None)
    expected = base64.urlsafe_b64encode(hmac.new(secret.encode(), request["body"], hashlib.sha256).digest()).decode()
    assert request["headers"]["X-Merge-Webhook-Signature"] == expected


def test_every_retry_of_a_delivery_carries_the_same_webhook_id(alice, private_urls):
    secret = rotate(alice)
    delivery, received = deliver(alice.organization, None, statuses=(503, 200), attempts=2)
    assert delivery.status == "delivered"
    assert len({request["headers"]["webhook-id"] for request in received}) == 1
    for request in received:
        Webhook(secret).verify(request["body"], request["headers"])


def test_after_a_rotation_both_secrets_verify_for_24_hours_then_only_the_new_one(alice, private_urls):
    old = rotate(alice)
    new = rotate(alice)
    _, (request,) = deliver(alice.organization, None)
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request["body"], request["headers"])
    Organization.objects.filter(pk=alice.organization.pk).update(
        webhook_previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    _, (later,) = deliver(alice.organization, None)
    Webhook(new).verify(later["body"], later["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(later["body"], later["headers"])


# --- The retry rule ------------------------------------------------------------------------------------------------

def test_a_receiver_that_refuses_the_delivery_is_not_asked_again(alice, private_urls, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    delivery, received = deliver(alice.organization, None, statuses=(400, 200), attempts=2)
    assert delivery.status == "failed" and delivery.attempts == 1 and len(received) == 1


def test_a_receivers_retry_after_is_honoured(alice, private_urls, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 1
    with recording_server(statuses=(200,)) as (receiver, _):
        Organization.objects.filter(pk=alice.organization.pk).update(webhook_url=receiver)
    alice.organization.refresh_from_db()
    with mock.patch("connections.webhooks._enqueue") as enqueue, \
            mock.patch("connections.client.post_to_user_url") as post:
        post.return_value = mock.Mock(status=429, headers=[("Retry-After", "120")])
        delivery = webhooks.webhook_send(alice.organization, "sync.completed", data={})
        webhooks.webhook_deliver(delivery.pk)
    assert enqueue.call_args.args[1] >= 120


# --- Settings API --------------------------------------------------------------------------------------------------

def test_settings_show_the_webhook_but_never_the_secret(alice):
    assert alice.client.get("/api/v1/webhook").json() == {"url": None, "events": [], "secret_set": True}
    secret = rotate(alice)
    response = alice.client.put("/api/v1/webhook", {"url": "https://hooks.example.test/in", "events": ["sync.completed"]},
                                format="json")
    assert response.status_code == 200
    assert response.json() == {"url": "https://hooks.example.test/in", "events": ["sync.completed"], "secret_set": True}
    assert secret not in alice.client.get("/api/v1/webhook").content.decode()


def test_settings_are_per_organization(alice, bob):
    alice.client.put("/api/v1/webhook", {"url": "https://alice.example.test/in"}, format="json")
    assert bob.client.get("/api/v1/webhook").json()["url"] is None
    old = alice.organization.webhook_secret()
    rotate(bob)
    alice.organization.refresh_from_db()
    assert alice.organization.webhook_secret() == old


@pytest.mark.parametrize("body, detail", [
    ({"url": "http://hooks.example.test/in"}, "url: Must be https"),
    ({"url": "http://127.0.0.1:9/in"}, "url: address 127.0.0.1 is private or loopback"),
    ({"url": "https://169.254.169.254/latest"}, "url: address 169.254.169.254 is never reachable"),
    ({"url": "https://127.0.0.1/in"}, "url: address 127.0.0.1 is private or loopback"),
    ({"url": "ftp://hooks.example.test/in"}, "url: Must be an https URL."),
    ({"url": "https://hooks.example.test/in", "events": ["sync.finished"]}, "events: Unknown event 'sync.finished'"),
    ({"events": []}, "url: This field is required."),
    ({"url": "https://[::1/in"}, "url: Not a valid URL."),
    ({"url": "https://hooks.example.test:99999/in"}, "url: Not a valid URL."),
    ({"url": "https://hooks.example.test/a b"}, "url: Must not contain spaces"),
    ({"url": "https:///in"}, "url: host: Must not be empty."),
])
def test_a_bad_webhook_setting_is_refused_with_400(alice, body, detail):
    response = alice.client.put("/api/v1/webhook", body, format="json")
    assert response.status_code == 400
    assert any(line.startswith(detail) for line in response.json()["error_details"]), response.json()
    assert alice.client.get("/api/v1/webhook").json()["url"] is None


def test_http_to_a_loopback_receiver_is_allowed_only_when_private_urls_are(alice, private_urls):
    response = alice.client.put("/api/v1/webhook", {"url": "http://127.0.0.1:9/in", "events": None}, format="json")
    assert response.status_code == 400  # events: null is not a list
    response = alice.client.put("/api/v1/webhook", {"url": "http://127.0.0.1:9/in"}, format="json")
    assert response.status_code == 200


def test_only_subscribed_events_are_sent(alice):
    alice.client.put("/api/v1/webhook", {"url": "https://hooks.example.test/in", "events": ["sync.completed"]},
                     format="json")
    alice.organization.refresh_from_db()
    assert webhooks.webhook_send(alice.organization, "async_passthrough.completed", data={}) is None
    assert webhooks.webhook_send(alice.organization, "sync.completed", data={}) is not None


def test_the_settings_api_is_in_the_openapi_schema(alice):
    paths = alice.client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {"get", "put"} <= set(paths["/api/v1/webhook/"])
    assert "201" in paths["/api/v1/webhook/secret/"]["post"]["responses"]


def test_the_settings_api_needs_an_api_key(db):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/webhook").status_code == 401
    assert APIClient().post("/api/v1/webhook/secret").status_code == 401

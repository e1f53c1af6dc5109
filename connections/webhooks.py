"""Signed outbound webhooks to an organization's URL, shared by async passthrough, syncing and the connect flow.

Contract: spec/webhooks.md. Body: Merge's envelope `{"hook": {"id", "event", "target"}, "linked_account": {...},
"data": {...}}`. Signatures, both on every attempt:
- Standard Webhooks: `webhook-id` (the delivery id), `webhook-timestamp` (this attempt, Unix seconds) and
  `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}", key = the secret's bytes after whsec_)>`,
  one `v1,` entry per secret in use (the previous one too for 24 h after a rotation), space-separated;
- `X-Merge-Webhook-Signature` = URL-safe base64 of HMAC-SHA256(raw body, key = the current secret as text), for
  Merge SDK users.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connections import client
from connections.addresses import check_address, ip_literal, normalize_host
from connections.models import Connection, Organization, WebhookAttempt, WebhookDelivery, new_webhook_secret
from connections.retry_policy import webhook_policy
from integration_platform import metrics
from integration_platform.errors import InvalidInput, PlatformError

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Merge-Webhook-Signature"
SECRET_PREFIX = "whsec_"
SECRET_OVERLAP = timedelta(hours=24)
# The events we send; an organization may subscribe to some of them (none listed: all).
EVENTS = ("async_passthrough.completed", "sync.completed", "connection.linked")


def signature(body: bytes, secret: str) -> str:
    """Merge's signature (merge.md §10)."""
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _signing_key(secret: str) -> bytes:
    """A `whsec_` secret's key is its base64 payload (Standard Webhooks); a legacy secret set by hand, its text."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def standard_signature(delivery_id: str, timestamp: int, body: bytes, secrets: list[str]) -> str:
    """`webhook-signature`: one `v1,<base64 HMAC-SHA256>` per secret, space-separated (Standard Webhooks)."""
    message = f"{delivery_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(_signing_key(secret), message, hashlib.sha256).digest()).decode()
                    for secret in secrets)


def signed_headers(delivery_id: str, body: bytes, secrets: list[str], timestamp: int) -> dict:
    return {"Content-Type": "application/json", "User-Agent": "integration-platform-webhooks",
            "webhook-id": delivery_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(delivery_id, timestamp, body, secrets),
            SIGNATURE_HEADER: signature(body, secrets[0])}


# --- Settings (the native API's /api/v1/webhook) -------------------------------------------------------------------

def webhook_settings(organization: Organization) -> dict:
    """What the settings API shows: never the secret itself."""
    return {"url": organization.webhook_url or None, "events": list(organization.webhook_events),
            "secret_set": bool(organization.webhook_secret_ciphertext)}


def webhook_settings_update(organization: Organization, *, url: str | None, events: list[str]) -> dict:
    """Set the organization's webhook URL (None: no webhook) and the events it receives (empty: all)."""
    problems = (webhook_url_problems(url) if url else []) + [
        f"events: Unknown event {event!r}; known events: {', '.join(EVENTS)}." for event in events if event not in EVENTS]
    if problems:
        raise InvalidInput("Invalid input.", problems)
    organization.webhook_url = url or ""
    organization.webhook_events = list(dict.fromkeys(events))
    organization.save(update_fields=["webhook_url", "webhook_events"])
    return webhook_settings(organization)


def webhook_url_problems(url: str) -> list[str]:
    """A webhook URL must be https (http only to a private or loopback host when WEBHOOK_ALLOW_PRIVATE_URLS is on)
    and must not name an address the SSRF guard refuses (it checks the resolved address again at every delivery)."""
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in url):
        return ["url: Must not contain spaces or control characters."]
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # reading the port also refuses a malformed one (ValueError)
            raise ValueError
        host = normalize_host(parts.hostname or "")
        ip = ip_literal(host)
        if ip is not None:
            check_address(ip, settings.WEBHOOK_ALLOW_PRIVATE_URLS)
    except InvalidInput as exc:
        return [f"url: {'; '.join(exc.details) or exc.message} (WEBHOOK_ALLOW_PRIVATE_URLS lets webhooks reach "
                "private networks; link-local addresses never)."]
    except ValueError:
        return ["url: Not a valid URL."]
    private = host == "localhost" or host.endswith(".localhost") or (ip is not None and not ip.is_global)
    if parts.scheme == "https" or (parts.scheme == "http" and private and settings.WEBHOOK_ALLOW_PRIVATE_URLS):
        return []
    if parts.scheme == "http":
        return ["url: Must be https (http only to a private or loopback host when WEBHOOK_ALLOW_PRIVATE_URLS is on)."]
    return ["url: Must be an https URL."]


def webhook_secret_rotate(organization: Organization) -> str:
    """A new secret, returned once; the replaced one keeps signing beside it for SECRET_OVERLAP."""
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=organization.pk)
        organization.webhook_previous_secret_ciphertext = organization.webhook_secret_ciphertext
        organization.webhook_previous_secret_expires_at = timezone.now() + SECRET_OVERLAP
        secret = new_webhook_secret()
        organization.set_webhook_secret(secret)
        organization.save(update_fields=["webhook_secret_ciphertext", "webhook_previous_secret_ciphertext",
                                          "webhook_previous_secret_expires_at"])
    return secret


# --- Deliveries ----------------------------------------------------------------------------------------------------

def linked_account(connection: Connection) -> dict:
    return {"id": str(connection.pk), "integration": connection.integration.name,
            "integration_slug": connection.integration.slug,
            "category": (connection.integration.categories or [""])[0],
            "end_user_origin_id": connection.end_user_id,
            "end_user_organization_name": connection.end_user_organization_name,
            "end_user_email_address": connection.end_user_email, "status": connection.status}


def webhook_send(organization, event: str, *, data: dict, connection: Connection | None = None) -> WebhookDelivery | None:
    """Queue a signed event for the organization's webhook (none configured, or not subscribed to: nothing happens)."""
    if not organization.webhook_url or (organization.webhook_events and event not in organization.webhook_events):
        return None
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(organization=organization, event=event, url=organization.webhook_url, payload={})
        delivery.payload = {"hook": {"id": str(delivery.pk), "event": event, "target": organization.webhook_url},
                            "linked_account": linked_account(connection) if connection else None, "data": data}
        delivery.save(update_fields=["payload"])
        transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def announce_linked(connection: Connection, *, account_token: str = "", **details) -> None:
    """`connection.linked` (also on a re-link by the connect flow), with the account token as Merge's webhook has."""
    webhook_send(connection.organization, "connection.linked", connection=connection,
                 data={"connection_id": str(connection.pk), "integration_slug": connection.integration.slug,
                       "end_user_id": connection.end_user_id, "account_token": account_token,
                       "sync_models": [model["name"] for model in connection.integration.sync_models]})


def _enqueue(delivery_id, delay_seconds: float = 0) -> None:
    from connections.tasks import deliver_webhook

    try:
        deliver_webhook.send_with_options(args=(delivery_id,), delay=int(delay_seconds * 1000) or None)
    except Exception:
        log.warning("Could not enqueue webhook delivery %s; the sweeper will retry.", delivery_id, exc_info=True)


def webhook_deliver(delivery_id) -> None:
    """One delivery attempt; if it failed and connections/retry_policy.py says another may succeed, schedule it
    (WEBHOOK_RETRY_BASE_SECONDS backoff, up to WEBHOOK_MAX_ATTEMPTS). A delivery is repeatable: receivers
    de-duplicate on `webhook-id`."""
    delivery = WebhookDelivery.objects.select_related("organization").filter(pk=delivery_id, status=WebhookDelivery.PENDING).first()
    if delivery is None:
        return
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    number = delivery.attempts + 1
    started = time.monotonic()
    response = status = error = None
    try:
        secrets = delivery.organization.webhook_signing_secrets(timezone.now())
        if not secrets:
            raise InvalidInput("The organization has no webhook secret; nothing is sent unsigned.")
        headers = signed_headers(str(delivery.pk), body, secrets, int(time.time()))
        response = client.post_to_user_url(delivery.url, body, headers, timeout=settings.WEBHOOK_TIMEOUT,
                                           allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
        status = response.status
    except PlatformError as exc:
        error = exc
    failure = (exc_text(error) if error is not None
               else "" if 200 <= status < 300 else f"Receiver answered HTTP {status}.")
    WebhookAttempt.objects.create(delivery=delivery, number=number, response_status=status, error=failure,
                                  duration_ms=int((time.monotonic() - started) * 1000))
    metrics.WEBHOOK_DELIVERIES.labels(metrics.outcome_of(status)).inc()
    now = timezone.now()
    if not failure:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.DELIVERED, attempts=number,
                                                              delivered_at=now, next_attempt_at=None)
        return
    delay = webhook_policy().next_delay(number, idempotent=True, response=response, error=error)
    if delay is None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.FAILED, attempts=number, next_attempt_at=None)
    else:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=number, next_attempt_at=now + timedelta(seconds=delay))
        _enqueue(delivery.pk, delay)


def exc_text(exc: PlatformError) -> str:
    return exc.message + (f" ({'; '.join(exc.details)})" if exc.details else "")


def webhook_replay(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery's payload again as a new delivery (operators, from the admin)."""
    copy = WebhookDelivery.objects.create(organization=delivery.organization, event=delivery.event,
                                          url=delivery.organization.webhook_url or delivery.url, payload=delivery.payload)
    transaction.on_commit(lambda: _enqueue(copy.pk))
    return copy


def webhook_sweep() -> int:
    """Re-enqueue pending deliveries whose wake-up was lost (broker outage, restarted worker)."""
    overdue = WebhookDelivery.objects.filter(status=WebhookDelivery.PENDING).filter(
        next_attempt_at__lt=timezone.now() - timedelta(seconds=60)) | WebhookDelivery.objects.filter(
        status=WebhookDelivery.PENDING, attempts=0, created_at__lt=timezone.now() - timedelta(seconds=60))
    ids = list(overdue.values_list("pk", flat=True))
    for delivery_id in ids:
        _enqueue(delivery_id)
    return len(ids)

"""Signed outbound webhooks to an organization's URL, shared by async passthrough and syncing.

Body: Merge's envelope `{"hook": {"id", "event", "target"}, "linked_account": {...}, "data": {...}}`.
Signature: `X-Merge-Webhook-Signature` = URL-safe base64 of HMAC-SHA256(raw body, the organization's secret).
"""

import base64
import hashlib
import hmac
import json
import logging
import random
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connections import client
from connections.models import Connection, WebhookAttempt, WebhookDelivery
from integration_platform.errors import PlatformError

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Merge-Webhook-Signature"


def signature(body: bytes, secret: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def linked_account(connection: Connection) -> dict:
    return {"id": str(connection.pk), "integration": connection.integration.name,
            "integration_slug": connection.integration.slug,
            "category": (connection.integration.categories or [""])[0],
            "end_user_origin_id": connection.end_user_id,
            "end_user_organization_name": connection.end_user_organization_name,
            "end_user_email_address": connection.end_user_email, "status": connection.status}


def webhook_send(organization, event: str, *, data: dict, connection: Connection | None = None) -> WebhookDelivery | None:
    """Queue a signed event for the organization's webhook (none configured: nothing happens)."""
    if not organization.webhook_url:
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


def backoff_seconds(attempt: int) -> float:
    """Exponential from WEBHOOK_RETRY_BASE_SECONDS, with ±20 % jitter so retries of many deliveries spread out."""
    return settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)


def webhook_deliver(delivery_id) -> None:
    """One delivery attempt; on failure, schedule the next with backoff until WEBHOOK_MAX_ATTEMPTS."""
    delivery = WebhookDelivery.objects.select_related("organization").filter(pk=delivery_id, status=WebhookDelivery.PENDING).first()
    if delivery is None:
        return
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body, delivery.organization.webhook_secret()),
               "User-Agent": "integration-platform-webhooks"}
    number = delivery.attempts + 1
    started = time.monotonic()
    status, error = None, ""
    try:
        response = client.post_to_user_url(delivery.url, body, headers, timeout=settings.WEBHOOK_TIMEOUT,
                                           allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
        status = response.status
        if not 200 <= status < 300:
            error = f"Receiver answered HTTP {status}."
    except PlatformError as exc:
        error = exc.message + (f" ({'; '.join(exc.details)})" if exc.details else "")
    WebhookAttempt.objects.create(delivery=delivery, number=number, response_status=status, error=error,
                                  duration_ms=int((time.monotonic() - started) * 1000))
    now = timezone.now()
    if not error:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.DELIVERED, attempts=number,
                                                              delivered_at=now, next_attempt_at=None)
    elif number >= settings.WEBHOOK_MAX_ATTEMPTS:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.FAILED, attempts=number, next_attempt_at=None)
    else:
        delay = backoff_seconds(number)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=number, next_attempt_at=now + timedelta(seconds=delay))
        _enqueue(delivery.pk, delay)


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

"""Dramatiq actors of the connections app: they take IDs and call services."""

import dramatiq

from connections import webhooks


@dramatiq.actor(queue_name="webhooks", max_retries=0)
def deliver_webhook(delivery_id: int):
    webhooks.webhook_deliver(delivery_id)


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_webhooks():
    webhooks.webhook_sweep()

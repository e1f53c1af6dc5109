"""Dramatiq actors of the passthrough app: they take IDs and call services."""

import dramatiq
from django.conf import settings

from passthrough import async_passthrough


# Retries are ours (the row's state), not Dramatiq's: a failed upstream call is final, a lost one is swept.
@dramatiq.actor(queue_name="async_passthrough", max_retries=0,
                time_limit=(settings.ASYNC_PASSTHROUGH_DEADLINE_SECONDS + 60) * 1000)
def run_async_passthrough(request_id: str):
    async_passthrough.async_passthrough_run(request_id)


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_async_passthrough():
    async_passthrough.async_passthrough_sweep()

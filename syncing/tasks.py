"""Dramatiq actors of the syncing app: they take IDs and call services."""

import dramatiq
from django.conf import settings

from syncing import services


# Retries are ours (the SyncState row), not Dramatiq's: a failed run is recorded, and the schedule runs it again.
@dramatiq.actor(queue_name="syncing", max_retries=0, time_limit=settings.SYNC_RUN_TIME_LIMIT_SECONDS * 1000)
def run_sync(state_id: int):
    services.sync_requested(state_id)


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def schedule_syncs():
    services.schedule_syncs()

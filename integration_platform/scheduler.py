"""Periodic jobs: APScheduler enqueues Dramatiq actors; the actors do the work in a worker.

Local mode starts a background scheduler beside the in-process worker of each `serve` process; scale-out runs
`manage.py run_scheduler`. The jobs are safe to run twice at once (atomic claims), so extra schedulers are harmless.
"""

from apscheduler.schedulers.background import BackgroundScheduler
from django.utils.module_loading import import_string

PERIODIC_JOBS = [
    ("passthrough.tasks.sweep_async_passthrough", 30),
    ("connections.tasks.sweep_webhooks", 60),
    ("syncing.tasks.schedule_syncs", 60),
    ("console.tasks.roll_up_calls", 60),
]


def build_scheduler(scheduler_class=BackgroundScheduler):
    scheduler = scheduler_class(timezone="UTC")
    for path, seconds in PERIODIC_JOBS:
        scheduler.add_job(import_string(path).send, "interval", seconds=seconds, id=path, coalesce=True, max_instances=1)
    return scheduler

"""Local mode has no external broker, so each `serve` process runs its own job worker and periodic-job scheduler."""

import logging

import dramatiq
from dramatiq import Worker

from integration_platform.scheduler import build_scheduler

log = logging.getLogger(__name__)
_worker = None
_scheduler = None


def start_in_process_worker(threads: int = 4) -> None:
    global _worker, _scheduler
    if _worker is None:
        _worker = Worker(dramatiq.get_broker(), worker_threads=threads, worker_timeout=200)
        _worker.start()
        _scheduler = build_scheduler()
        _scheduler.start()
        log.info("In-process job worker (%d threads) and scheduler started.", threads)


def stop_in_process_worker() -> None:
    global _worker, _scheduler
    if _scheduler is not None:
        _scheduler.shutdown(wait=False)
        _scheduler = None
    if _worker is not None:
        _worker.stop()
        _worker = None

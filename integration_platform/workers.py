"""The in-process job worker of local mode: no external broker, so each web process runs its own worker."""

import logging

import dramatiq
from dramatiq import Worker

log = logging.getLogger(__name__)
_worker = None


def start_in_process_worker(threads: int = 4) -> Worker:
    global _worker
    if _worker is None:
        import django_dramatiq.apps  # noqa: F401  (the broker is configured when Django's apps are ready)

        _worker = Worker(dramatiq.get_broker(), worker_threads=threads, worker_timeout=200)
        _worker.start()
        log.info("In-process job worker started with %d threads.", threads)
    return _worker


def stop_in_process_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None

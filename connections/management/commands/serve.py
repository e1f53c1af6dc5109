from django.conf import settings
from django.core.management.base import BaseCommand
from gunicorn.app.base import BaseApplication


class PlatformServer(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from integration_platform.wsgi import application

        return application


def start_job_worker(worker):
    from integration_platform.workers import start_in_process_worker

    start_in_process_worker()


def stop_job_worker(server, worker):
    from integration_platform.workers import stop_in_process_worker

    stop_in_process_worker()


def flush_call_log(server, worker):
    """A worker leaving gracefully (SIGTERM, `serve` shutdown, max-requests recycling) writes its queued log rows."""
    from passthrough.call_log import writer

    writer.close()


def worker_exit(server, worker):
    if settings.IN_PROCESS_WORKER:
        stop_job_worker(server, worker)
    flush_call_log(server, worker)


class Command(BaseCommand):
    help = "Serve the platform with gunicorn; in local mode (no DRAMATIQ_BROKER_URL) each process also runs jobs."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--workers", type=int, default=settings.SERVE_WORKERS)
        parser.add_argument("--threads", type=int, default=settings.SERVE_THREADS)

    def handle(self, bind, workers, threads, **options):
        config = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            # Above the 55 s synchronous passthrough budget, so the 408 is ours, not a killed worker.
            "timeout": 90,
            "graceful_timeout": 30,
            "worker_exit": worker_exit,
        }
        if settings.SERVE_ACCESS_LOG:
            config["accesslog"] = "-"
        if settings.IN_PROCESS_WORKER:
            config["post_worker_init"] = start_job_worker
        self.stdout.write(f"Serving on http://{bind} ({workers} processes x {threads} threads"
                          f"{', in-process job worker' if settings.IN_PROCESS_WORKER else ''}).")
        PlatformServer(config).run()

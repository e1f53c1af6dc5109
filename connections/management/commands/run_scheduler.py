from apscheduler.schedulers.blocking import BlockingScheduler
from django.core.management.base import BaseCommand

from integration_platform.scheduler import PERIODIC_JOBS, build_scheduler


class Command(BaseCommand):
    help = "Scale-out mode: enqueue the periodic jobs (sweepers, purges) for the rundramatiq workers."

    def handle(self, **options):
        self.stdout.write("Scheduling: " + ", ".join(f"{path} every {seconds}s" for path, seconds in PERIODIC_JOBS))
        build_scheduler(BlockingScheduler).start()

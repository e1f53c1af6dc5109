from integration_platform.commands import JsonCommand
from passthrough.async_passthrough import async_results_purge


class Command(JsonCommand):
    help = "Delete async passthrough results older than ASYNC_PASSTHROUGH_RETENTION_HOURS."

    def run(self, **options):
        return {"deleted": async_results_purge()}

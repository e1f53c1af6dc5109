from django.conf import settings

from integration_platform.commands import JsonCommand
from passthrough import services


class Command(JsonCommand):
    help = "Delete function-call log rows older than FUNCTION_CALL_RETENTION_DAYS (or --days)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.FUNCTION_CALL_RETENTION_DAYS)

    def run(self, days, **options):
        return {"deleted": services.function_calls_purge(days)}

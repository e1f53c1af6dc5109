import json
import sys

from django.core.management.base import BaseCommand

from integration_platform.errors import PlatformError


class JsonCommand(BaseCommand):
    """A management command whose last line of output is JSON: the result, or `{error, error_details}` and exit 1."""

    def handle(self, *args, **options):
        try:
            result = self.run(**options)
        except PlatformError as exc:
            self.stdout.write(json.dumps({"error": exc.message, "error_details": exc.details}))
            sys.exit(1)
        self.stdout.write(json.dumps(result, default=str))

    def run(self, **options) -> dict:
        raise NotImplementedError

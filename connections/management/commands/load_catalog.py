import json

from connections import services
from integration_platform.commands import JsonCommand
from integration_platform.errors import InvalidInput


class Command(JsonCommand):
    help = "Validate a catalog JSON file and upsert its integrations (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def run(self, path, **options):
        try:
            with open(path, encoding="utf-8") as f:
                document = json.load(f)
        except OSError as exc:
            raise InvalidInput("Cannot read catalog file.", [f"{path}: {exc.strerror}"]) from None
        except json.JSONDecodeError as exc:
            raise InvalidInput("Catalog file is not valid JSON.", [f"{path}: {exc}"]) from None
        return services.catalog_load(document)

import json

from django.core.management.base import BaseCommand, CommandError

from functions import services
from functions.openapi import DocumentError


class Command(BaseCommand):
    help = ("Create or update an integration's typed functions from an OpenAPI 3.0/3.1 document (file or URL, JSON "
            "or YAML). The last line printed is a JSON summary.")

    def add_arguments(self, parser):
        parser.add_argument("source", help="A file path or an http(s) URL.")
        parser.add_argument("--integration", required=True, help="The integration's slug.")
        parser.add_argument("--tag", action="append", default=[], help="Keep operations with this tag (repeatable).")
        parser.add_argument("--operation", action="append", default=[],
                            help="Keep the operation with this operationId (repeatable).")
        parser.add_argument("--prune", action="store_true",
                            help="Delete this integration's typed functions whose operation is no longer in the document.")

    def handle(self, source, integration, tag, operation, prune, **options):
        try:
            text, base_uri = services.document_text(source)
            summary = services.openapi_import(integration_slug=integration, text=text, base_uri=base_uri, tags=tag,
                                              operations=operation, prune=prune)
        except DocumentError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(summary.as_json()))

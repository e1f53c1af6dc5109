from functions import services
from integration_platform.commands import JsonCommand


class Command(JsonCommand):
    help = ("Create or update an integration's typed functions from an OpenAPI 3.0/3.1 document (file or URL, JSON "
            "or YAML). The last line printed is a JSON summary (or the error, with exit status 1).")

    def add_arguments(self, parser):
        parser.add_argument("source", help="A file path or an http(s) URL.")
        parser.add_argument("--integration", required=True, help="The integration's slug.")
        parser.add_argument("--tag", action="append", default=[], help="Keep operations with this tag (repeatable).")
        parser.add_argument("--operation", action="append", default=[],
                            help="Keep the operation with this operationId (repeatable).")
        parser.add_argument("--prune", action="store_true",
                            help="Delete this integration's typed functions whose operation is no longer in the document.")

    def run(self, source, integration, tag, operation, prune, **options):
        text, base_uri = services.document_text(source)
        return services.openapi_import(integration_slug=integration, text=text, base_uri=base_uri, tags=tag,
                                       operations=operation, prune=prune).as_json()

from connections import services
from integration_platform.commands import JsonCommand


class Command(JsonCommand):
    help = "Create an API key for an organization (created if new). The key is printed once."

    def add_arguments(self, parser):
        parser.add_argument("organization")
        parser.add_argument("--name", default="")

    def run(self, organization, name, **options):
        api_key, full_key = services.api_key_create(organization, name=name)
        return {"key": full_key, "key_id": api_key.key_id, "organization": api_key.organization.name}

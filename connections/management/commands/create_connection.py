import json

from connections import services
from connections.models import Organization
from integration_platform.commands import JsonCommand
from integration_platform.errors import InvalidInput


class Command(JsonCommand):
    help = "Connect an end user's account. The account token is printed once."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization name.")
        parser.add_argument("--integration", required=True, help="Integration slug.")
        parser.add_argument("--end-user", required=True, help="Your end user's id.")
        parser.add_argument("--credentials", required=True, help='JSON, e.g. \'{"token": "..."}\'.')
        parser.add_argument("--label", default="")

    def run(self, org, integration, end_user, credentials, label, **options):
        organization = Organization.objects.filter(name=org).first()
        if organization is None:
            raise InvalidInput("Invalid input.", [f"org: Unknown organization {org!r}."])
        try:
            credentials = json.loads(credentials)
        except json.JSONDecodeError:
            raise InvalidInput("Invalid input.", ["credentials: Must be JSON."]) from None
        connection, token = services.connection_create(
            organization=organization, integration_slug=integration, end_user_id=end_user,
            credentials=credentials, label=label,
        )
        return {"id": connection.pk, "account_token": token}

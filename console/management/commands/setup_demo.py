import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from connections import connect, services
from connections.models import ApiKey, Connection, Integration, Organization
from integration_platform.commands import JsonCommand
from passthrough.models import FunctionCall
from syncing.models import SyncState

DEMO_ORG = "Demo"
DEMO_KEY_NAME = "demo (make run)"


# (method, path, status, duration ms, error): one call of each outcome class, so the dashboard is not empty.
DEMO_CALLS = [
    ("GET", "/contacts?limit=2", 200, 35, ""),
    ("POST", "/contacts", 201, 80, ""),
    ("GET", "/contacts/404", 404, 22, ""),
    ("GET", "/contacts", 429, 15, ""),
    ("GET", "/reports/slow", 502, 1900, ""),
    ("GET", "/contacts", None, 10000, "Upstream unreachable: connection timed out (demo row)."),
]


DEMO_BODY = '{"demo": true}'


def demo_calls(connection, base_url):
    """Call-log rows as passthrough writes them, marked as demo data in their response body or error."""
    now = timezone.now()
    FunctionCall.objects.bulk_create(FunctionCall(
        organization_id=connection.organization_id, connection=connection, integration_id=connection.integration_id,
        function=connection.integration.functions.order_by("name").first(),
        dialect=FunctionCall.DIALECT_NATIVE, method=method, url=f"{base_url}/echo{path}", response_status=status,
        response_body=DEMO_BODY if status else "", response_size=len(DEMO_BODY) if status else 0,
        duration_ms=duration, error=error,
        started_at=now, request_headers={"Authorization": "<redacted>"}) for method, path, status, duration, error in DEMO_CALLS)


class Command(JsonCommand):
    help = "Local demo: an admin login, an API key and a connection to the echo integration (printed)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def run(self, base_url, **options):
        password = secrets.token_urlsafe(12)
        admin, _ = get_user_model().objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        # One demo key at a time: every run revokes the previous one and prints a fresh one.
        ApiKey.objects.filter(organization__name=DEMO_ORG, name=DEMO_KEY_NAME).revoke()
        api_key, full_key = services.api_key_create(DEMO_ORG, name=DEMO_KEY_NAME)
        Integration.objects.filter(slug="echo").update(base_url=f"{base_url}/echo")  # follows `make run PORT=...`
        previous = Connection.objects.filter(organization__name=DEMO_ORG, integration__slug="echo", end_user_id="demo-user")
        FunctionCall.objects.filter(connection__in=previous).delete()  # the previous run's demo calls
        previous.delete()
        connection, account_token = services.connection_create(
            organization=Organization.objects.get(name=DEMO_ORG), integration_slug="echo",
            end_user_id="demo-user", credentials={"token": "demo-secret-token"}, label="Demo echo account",
        )
        demo_calls(connection, base_url)
        # A week-long link for a second demo user: open it to link an account through the hosted connect page.
        _, connect_token = connect.session_create(connection.organization, end_user_id="demo-user-2",
                                                  expires_in_minutes=connect.SESSION_MINUTES_MAX)
        connect_url = f"{base_url}/connect/{connect_token}"
        # The first sync's message went to this command's in-memory broker: let the server's scheduler send it again
        # on its first round instead of after SYNC_REQUEUE_AFTER_SECONDS.
        SyncState.objects.filter(connection=connection, requested_at__isnull=False).update(
            enqueued_at=timezone.now() - timedelta(days=1))
        self.stdout.write(
            "\n"
            f"  Admin:          {base_url}/admin/   user: admin   password: {password}\n"
            f"  API docs:       {base_url}/api/docs/\n"
            f"  API key:        {full_key}\n"
            f"  Connection:     id {connection.pk} (echo), account token {account_token}\n"
            f"  Connect link:   {connect_url}\n"
            "\n"
            f"  curl -H 'Authorization: Bearer {full_key}' {base_url}/api/v1/integrations\n"
        )
        return {"admin_user": "admin", "admin_password": password, "key": full_key, "key_id": api_key.key_id,
                "connection_id": connection.pk, "account_token": account_token, "connect_url": connect_url}

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from connections import connect, services
from connections.models import ApiKey, Connection, Organization
from integration_platform.commands import JsonCommand

DEMO_ORG = "Demo"
DEMO_KEY_NAME = "demo (make run)"


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
        ApiKey.objects.filter(organization__name=DEMO_ORG, name=DEMO_KEY_NAME, revoked_at__isnull=True).update(revoked_at=timezone.now())
        api_key, full_key = services.api_key_create(DEMO_ORG, name=DEMO_KEY_NAME)
        Connection.objects.filter(organization__name=DEMO_ORG, integration__slug="echo", end_user_id="demo-user").delete()
        connection, account_token = services.connection_create(
            organization=Organization.objects.get(name=DEMO_ORG), integration_slug="echo",
            end_user_id="demo-user", credentials={"token": "demo-secret-token"}, label="Demo echo account",
        )
        # A week-long link for a second demo user: open it to link an account through the hosted connect page.
        _, connect_token = connect.session_create(connection.organization, end_user_id="demo-user-2",
                                                  expires_in_minutes=connect.SESSION_MINUTES_MAX)
        connect_url = f"{base_url}/connect/{connect_token}"
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

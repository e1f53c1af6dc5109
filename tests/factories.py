"""Builders for test data. Tenants are named: alice and bob are two organizations that must never see each other."""

from connections import services
from connections.models import Integration, Organization


def make_integration(slug="acme", base_url="https://api.acme.test/v1", auth=None, **extra) -> Integration:
    entry = {"slug": slug, "name": slug.title(), "base_url": base_url, "auth": auth or {"scheme": "bearer"}, **extra}
    integration, _ = services.integration_upsert(entry)
    return integration


def make_api_key(organization_name="alice"):
    """Returns (api_key, full key)."""
    return services.api_key_create(organization_name)


def make_connection(organization, integration, end_user_id="user-1", credentials=None):
    """Returns (connection, account token)."""
    return services.connection_create(
        organization=organization, integration_slug=integration.slug, end_user_id=end_user_id,
        credentials=credentials if credentials is not None else {"token": "tok-SECRET-123456"},
    )


def organization(name) -> Organization:
    return Organization.objects.get_or_create(name=name)[0]


def make_function_call(organization, connection=None, **fields):
    """A function-call log row, as the passthrough service would write it (already redacted)."""
    from django.utils import timezone

    from passthrough.models import FunctionCall

    integration = connection.integration if connection else None
    values = {
        "organization": organization,
        "connection": connection,
        "integration": integration,
        "function": integration.functions.first() if integration else None,
        "dialect": FunctionCall.DIALECT_NATIVE,
        "method": "GET",
        "url": "https://api.acme.test/v1/contacts?limit=2",
        "request_headers": {"Authorization": "<redacted>", "Accept": "application/json"},
        "response_status": 200,
        "response_headers": {"Content-Type": "application/json"},
        "response_body": '{"contacts": []}',
        "duration_ms": 12,
        "started_at": timezone.now(),
        **fields,
    }
    return FunctionCall.objects.create(**values)

"""Business logic of the catalog, API keys and connections."""

from django.db import transaction

from connections import lifecycle
from connections.catalog import validate_entry
from connections.models import ApiKey, Connection, Integration, Organization
from integration_platform.errors import InvalidInput, NotFound
from integration_platform.validation import named_entries_problems

AUTH_CONFIG_SECRET_KEYS = ("client_secret",)


def catalog_load(document) -> dict:
    """Validate a whole catalog document, then upsert every integration in one transaction (all or nothing)."""
    if not isinstance(document, dict) or not isinstance(document.get("integrations"), list):
        raise InvalidInput("Invalid catalog.", ['The file must be a JSON object {"integrations": [...]}.'])
    entries = document["integrations"]
    errors = named_entries_problems(entries, "integrations", "slug", validate_entry, "Duplicate slug.")
    if errors:
        raise InvalidInput("Invalid catalog.", errors)
    created = updated = 0
    with transaction.atomic():
        for entry in entries:
            _, was_created = integration_upsert(entry)
            created += was_created
            updated += not was_created
    return {"created": created, "updated": updated}


def integration_upsert(entry: dict):
    auth = dict(entry["auth"])
    scheme = auth.pop("scheme")
    client_secret = auth.pop("client_secret", None)
    integration, created = Integration.objects.get_or_create(slug=entry["slug"], defaults={"name": entry["name"]})
    integration.name = entry["name"]
    integration.description = entry.get("description", "")
    integration.base_url = entry["base_url"]
    integration.auth_scheme = scheme
    integration.auth_config = auth
    if client_secret is not None:
        integration.set_oauth_client_secret(client_secret)
    integration.categories = entry.get("categories", [])
    integration.rate_limits = entry.get("rate_limits", [])
    integration.pause = entry.get("pause", Integration.PAUSE_CONNECTION)
    integration.allowed_override_hosts = [h.lower() for h in entry.get("allowed_override_hosts", [])]
    integration.sync_models = entry.get("sync_models", [])
    integration.docs_url = entry.get("docs_url", "")
    integration.logo_url = entry.get("logo_url", "")
    integration.enabled = entry.get("enabled", True)
    integration.save()
    return integration, created


def api_key_create(organization_name: str, name: str = "") -> tuple[ApiKey, str]:
    """Create an API key for an organization (created if new). Returns (key, full key shown once)."""
    with transaction.atomic():
        organization, _ = Organization.objects.get_or_create(name=organization_name)
        return ApiKey.generate(organization, name=name)


def connection_create(*, organization, integration_slug, end_user_id, credentials, label="", end_user_email="",
                      end_user_organization_name="") -> tuple[Connection, str]:
    """Connect an end user's account. Returns (connection, account token shown once)."""
    integration = Integration.objects.filter(slug=integration_slug, enabled=True).first()
    if integration is None:
        raise InvalidInput("Invalid input.", [f"integration: Unknown or disabled integration {integration_slug!r}."])
    if not isinstance(end_user_id, str) or not end_user_id.strip():
        raise InvalidInput("Invalid input.", ["end_user_id: This field is required."])
    errors = integration.scheme.validate_credentials(credentials)
    if errors:
        raise InvalidInput("Invalid input.", errors)
    connection = Connection(
        organization=organization,
        integration=integration,
        end_user_id=end_user_id.strip(),
        label=label,
        end_user_email=end_user_email,
        end_user_organization_name=end_user_organization_name,
    )
    connection.credentials = credentials
    token = connection.issue_account_token()
    with transaction.atomic():
        connection.save()
        lifecycle.announce(lifecycle.LINKED, connection, account_token=token)
    return connection, token


def connection_delete(connection: Connection) -> None:
    connection.delete()


def connection_for_account_token(organization, token: str | None) -> Connection:
    """The organization's connection holding this account token; NotFound for unknown or foreign tokens."""
    connection = (
        Connection.objects.for_account_token(token).filter(organization=organization).select_related("integration").first()
        if token else None
    )
    if connection is None:
        raise NotFound("Unknown account token.")
    return connection

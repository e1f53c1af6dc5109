import base64
import hashlib
import secrets
from datetime import timedelta

from django.db import models
from django.utils import timezone

from connections import crypto
from connections.auth_schemes import AUTH_SCHEMES


# `last_used_at` of API keys and connections is kept to this resolution: a row update on every call would cost
# each call a write (and serialise concurrent calls of one key or connection on its row lock).
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def last_used_outdated(last_used_at, now) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Organization(models.Model):
    """A tenant: one customer of the platform. Every API key, connection and call belongs to one."""

    name = models.CharField(max_length=200, unique=True)
    webhook_url = models.URLField(blank=True, max_length=2000)
    webhook_events = models.JSONField(default=list, blank=True, help_text="Events sent to the webhook; empty: all.")
    webhook_secret_ciphertext = models.TextField(blank=True, editable=False)
    # After a rotation the replaced secret keeps signing (beside the new one) until this instant.
    webhook_previous_secret_ciphertext = models.TextField(blank=True, editable=False)
    webhook_previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    allowed_redirect_origins = models.JSONField(
        default=list, blank=True,
        help_text='Origins the connect flow may send end users back to (and that may embed it), e.g. ["https://app.example.com"].')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.webhook_secret_ciphertext:  # every organization has a secret: no event is signed with ""
            self.set_webhook_secret(new_webhook_secret())
        super().save(*args, **kwargs)

    def webhook_secret(self) -> str:
        return crypto.decrypt_text(self.webhook_secret_ciphertext) if self.webhook_secret_ciphertext else ""

    def set_webhook_secret(self, value: str) -> None:
        self.webhook_secret_ciphertext = crypto.encrypt_text(value) if value else ""

    def webhook_signing_secrets(self, now) -> list[str]:
        """The secrets every delivery is signed with now: the current one, and the previous one during its overlap."""
        secrets_ = [self.webhook_secret()]
        expires_at = self.webhook_previous_secret_expires_at
        if self.webhook_previous_secret_ciphertext and expires_at and expires_at > now:
            secrets_.append(crypto.decrypt_text(self.webhook_previous_secret_ciphertext))
        return [secret for secret in secrets_ if secret]


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def revoke(self) -> int:
        """Revoke the active keys of this queryset, in every process's cache too (a raw UPDATE sends no signal)."""
        from connections import hot_cache  # it imports this module

        count = self.active().update(revoked_at=timezone.now())
        hot_cache.bump()
        return count


class ApiKey(models.Model):
    """A developer's key for the REST and vendor-compatible APIs.

    The full key is `<key_id>.<secret>`, shown once. We keep its SHA-256 (Bearer lookup) and, encrypted, the key
    itself, because the Integry dialect verifies an HMAC keyed with it.
    """

    KEY_ID_PREFIX = "ak_"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    key_id = models.CharField(max_length=40, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    key_ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return self.key_id

    def __repr__(self):
        return f"<ApiKey {self.key_id} org={self.organization_id}>"

    @classmethod
    def generate(cls, organization, name=""):
        """Create a key; returns (api_key, full_key). The full key is never stored in clear."""
        key_id = cls.KEY_ID_PREFIX + secrets.token_hex(8)
        full_key = f"{key_id}.{secrets.token_urlsafe(32)}"
        api_key = cls.objects.create(
            organization=organization,
            name=name,
            key_id=key_id,
            key_hash=token_hash(full_key),
            key_ciphertext=crypto.encrypt_text(full_key),
        )
        return api_key, full_key

    @property
    def is_active(self):
        return self.revoked_at is None

    def secret(self) -> str:
        return crypto.decrypt_text(self.key_ciphertext)

    def touch(self):
        """Record that the key was used; written at most once per LAST_USED_RESOLUTION."""
        now = timezone.now()
        if last_used_outdated(self.last_used_at, now):
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class Integration(models.Model):
    """A catalog entry: one third-party API and how to authenticate against it."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    base_url = models.URLField(max_length=2000)
    auth_scheme = models.CharField(max_length=20, choices=[(name, name) for name in AUTH_SCHEMES])
    # Non-secret scheme settings: api_key {"in", "name"}; oauth2 {"authorize_url", "token_url", "scopes", "client_id"}.
    auth_config = models.JSONField(default=dict, blank=True)
    oauth_client_secret_ciphertext = models.TextField(blank=True, editable=False)
    categories = models.JSONField(default=list, blank=True)
    rate_limits = models.JSONField(default=list, blank=True, help_text='List of {"requests": N, "per_seconds": W}.')
    PAUSE_CONNECTION, PAUSE_INTEGRATION = "connection", "integration"
    # What an upstream "slow down" signal (429/503 with Retry-After, X-RateLimit-Remaining: 0) pauses: the
    # connection that received it (per-account quotas, the default) or every connection (an app-wide quota).
    pause = models.CharField(max_length=20, default=PAUSE_CONNECTION,
                             choices=[(PAUSE_CONNECTION, "the connection that was told"),
                                      (PAUSE_INTEGRATION, "the whole integration")],
                             help_text="What an upstream rate-limit signal pauses.")
    allowed_override_hosts = models.JSONField(default=list, blank=True)
    sync_models = models.JSONField(default=list, blank=True)
    docs_url = models.URLField(blank=True, max_length=2000)
    logo_url = models.URLField(blank=True, max_length=2000)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.name

    @property
    def scheme(self):
        return AUTH_SCHEMES[self.auth_scheme]

    @property
    def passthrough_function_name(self):
        return f"{self.slug}-passthrough-request"

    def oauth_client_secret(self) -> str:
        return crypto.decrypt_text(self.oauth_client_secret_ciphertext) if self.oauth_client_secret_ciphertext else ""

    def set_oauth_client_secret(self, value: str) -> None:
        self.oauth_client_secret_ciphertext = crypto.encrypt_text(value) if value else ""

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        Function.sync_passthrough_for(self)


PASSTHROUGH_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def passthrough_parameters(integration):
    return {
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": PASSTHROUGH_METHODS, "description": "HTTP method."},
            "url": {
                "type": "string",
                "description": f"Absolute URL on {integration.base_url} (or an allowed override host), or a path relative to it.",
            },
            "body": {"type": "object", "description": "Request body: an object is sent as JSON, a string as-is."},
            "headers": {"type": "object", "description": "Headers to send upstream."},
            "query": {"type": "object", "description": "Query parameters appended to the URL."},
        },
        "required": ["method", "url"],
    }


class FunctionQuerySet(models.QuerySet):
    def callable(self):
        """Functions that can be listed and called: enabled, of an enabled integration."""
        return self.filter(enabled=True, integration__enabled=True)


class Function(models.Model):
    """A callable function of an integration: its passthrough request, or a typed function imported from the
    upstream's OpenAPI document (functions/openapi.py), which calls one operation."""

    TYPE_PASSTHROUGH = "passthrough"
    TYPE_QUERY = "query"
    TYPE_ACTION = "action"
    TYPES = [(TYPE_PASSTHROUGH, "Passthrough"), (TYPE_QUERY, "Query"), (TYPE_ACTION, "Action")]

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="functions")
    name = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=20, choices=TYPES, default=TYPE_PASSTHROUGH)
    description = models.TextField()
    parameters = models.JSONField(help_text="JSON Schema of the arguments object.")
    output = models.JSONField(null=True, blank=True, help_text="JSON Schema of the upstream's 2xx JSON answer.")
    # {"method", "path", "arguments": {argument: {"in": path|query|header|body|body_property, "name"}},
    #  "body_media_type"}; empty for the passthrough function.
    operation = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)

    objects = FunctionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def sync_passthrough_for(cls, integration):
        cls.objects.update_or_create(
            integration=integration,
            type=cls.TYPE_PASSTHROUGH,
            defaults={
                "name": integration.passthrough_function_name,
                "description": f"Make an authenticated HTTP request to the {integration.name} API.",
                "parameters": passthrough_parameters(integration),
            },
        )


class ConnectionQuerySet(models.QuerySet):
    def for_account_token(self, token: str):
        return self.filter(account_token_prefix=token[: Connection.TOKEN_PREFIX_LENGTH], account_token_hash=token_hash(token))


class Connection(models.Model):
    """One connected account of one end user for one integration."""

    STATUS_ACTIVE = "active"
    STATUS_NEEDS_REAUTH = "needs_reauth"
    STATUS_DISABLED = "disabled"
    STATUSES = [(STATUS_ACTIVE, "Active"), (STATUS_NEEDS_REAUTH, "Needs re-authorization"), (STATUS_DISABLED, "Disabled")]
    TOKEN_PREFIX_LENGTH = 12

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="connections")
    integration = models.ForeignKey(Integration, on_delete=models.PROTECT, related_name="connections")
    end_user_id = models.CharField(max_length=255)
    label = models.CharField(max_length=255, blank=True)
    end_user_email = models.CharField(max_length=255, blank=True)
    end_user_organization_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=STATUSES, default=STATUS_ACTIVE)
    status_detail = models.CharField(max_length=500, blank=True)
    credentials_ciphertext = models.TextField(editable=False)
    account_token_prefix = models.CharField(max_length=TOKEN_PREFIX_LENGTH, db_index=True, editable=False)
    account_token_hash = models.CharField(max_length=64, editable=False)
    # Encrypted, for the connect flow's public-token exchange and `connection.linked` webhook of a re-link.
    account_token_ciphertext = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "integration", "end_user_id"])]

    def __str__(self):
        return f"{self.integration_id and self.integration.slug} / {self.end_user_id}"

    def __repr__(self):
        return f"<Connection {self.pk} org={self.organization_id} integration={self.integration_id} status={self.status}>"

    @property
    def credentials(self) -> dict:
        return crypto.decrypt_json(self.credentials_ciphertext)

    @credentials.setter
    def credentials(self, value: dict) -> None:
        self.credentials_ciphertext = crypto.encrypt_json(value)

    def issue_account_token(self) -> str:
        """Give the connection a new account token; returns it (shown once, stored hashed)."""
        token = "at_" + secrets.token_urlsafe(32)
        self.account_token_prefix = token[: self.TOKEN_PREFIX_LENGTH]
        self.account_token_hash = token_hash(token)
        self.account_token_ciphertext = crypto.encrypt_text(token)
        return token

    def account_token(self) -> str:
        """The account token, or "" for a connection made before tokens were kept encrypted."""
        return crypto.decrypt_text(self.account_token_ciphertext) if self.account_token_ciphertext else ""

    def secret_values(self) -> list[str]:
        return self.integration.scheme.secret_values(self.credentials)

    def touch(self):
        """Record that the connection was used; written at most once per LAST_USED_RESOLUTION."""
        now = timezone.now()
        if last_used_outdated(self.last_used_at, now):
            Connection.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class ConnectSession(models.Model):
    """One end user's visit to the hosted connect page, from the developer's request to the public token.

    The session token (in the page URL), the OAuth2 `state` and the public token are stored as SHA-256 hashes; the
    PKCE verifier encrypted. A session ends when it produces a connection (`completed_at`).
    """

    TOKEN_PREFIX, PUBLIC_TOKEN_PREFIX = "cs_", "pt_"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="connect_sessions")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    end_user_id = models.CharField(max_length=255)
    end_user_email = models.CharField(max_length=255, blank=True)
    end_user_organization_name = models.CharField(max_length=255, blank=True)
    integrations = models.ManyToManyField(Integration, related_name="+")
    redirect_url = models.URLField(max_length=2000, blank=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                                   help_text="Set for a reconnect, and once the flow produced a connection.")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    oauth_state_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    oauth_browser_hash = models.CharField(max_length=64, blank=True, editable=False)
    oauth_verifier_ciphertext = models.TextField(blank=True, editable=False)
    oauth_integration = models.ForeignKey(Integration, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                                          editable=False)
    oauth_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    public_token_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    public_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.end_user_id} ({self.organization})"

    @property
    def state(self) -> str:
        if self.completed_at:
            return "used"
        return "expired" if self.expires_at <= timezone.now() else "open"


class WebhookDelivery(models.Model):
    """One signed event for an organization's webhook URL, retried with backoff; each attempt is recorded."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
    STATUSES = [(s, s) for s in (PENDING, DELIVERED, FAILED)]

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=100, db_index=True)
    url = models.URLField(max_length=2000)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.event} → {self.url} ({self.status})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]

    def __str__(self):
        return f"attempt {self.number}: {self.response_status or self.error[:60]}"


class RateLimitScope(models.Model):
    """What one sliding log of send times counts (an integration, or one connection of it), in local mode.

    Its row is the lock that serialises permit decisions on PostgreSQL, and it holds the scope's upstream pause.
    """

    key = models.CharField(max_length=100, unique=True)  # "integration:<id>" or "connection:<id>", as in Redis
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    paused_until = models.FloatField(default=0.0)  # Unix time; nothing is sent for this scope before it

    def __str__(self):
        return self.key


class RateLimitSend(models.Model):
    """One permit taken: a request left for this scope at `sent_at` (Unix time). Trimmed once older than any window."""

    scope = models.ForeignKey(RateLimitScope, on_delete=models.CASCADE, related_name="sends")
    sent_at = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["scope", "sent_at"])]

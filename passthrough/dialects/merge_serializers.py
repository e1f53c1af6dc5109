"""Merge-compatible dialect: the wire shapes (merge.md §4, §6, §8), as serializers for the answers and the schema."""

from typing import Optional

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from connections.models import Connection
from passthrough import envelopes, services

# Merge's linked-account statuses for ours. INCOMPLETE (awaiting the connect flow) has no connection yet.
ACCOUNT_STATUSES = {Connection.STATUS_ACTIVE: "COMPLETE", Connection.STATUS_NEEDS_REAUTH: "RELINK_NEEDED",
                    Connection.STATUS_DISABLED: "IDLE"}
MERGE_ACCOUNT_STATUSES = ("COMPLETE", "INCOMPLETE", "RELINK_NEEDED", "IDLE")
SYNC_STATUSES = ("SYNCING", "DONE", "FAILED", "DISABLED", "PAUSED", "PARTIALLY_SYNCED")
ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"  # merge.md §9: UTC, `Z`, microseconds kept (even .000000)

ERROR = inline_serializer("MergeError", {
    "detail": serializers.CharField(),
    "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
})
EMPTY = inline_serializer("MergeEmpty", {})


class _MergeAccountSerializer(serializers.Serializer):
    """Fields shared by AccountDetails and AccountDetailsAndActions."""

    id = serializers.CharField(source="pk")
    category = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    end_user_origin_id = serializers.CharField(source="end_user_id")
    is_duplicate = serializers.SerializerMethodField()
    account_type = serializers.SerializerMethodField()
    completed_at = serializers.DateTimeField(source="created_at")

    def get_category(self, connection) -> str:
        return self.context["category"]

    def get_status(self, connection) -> str:
        return ACCOUNT_STATUSES[connection.status]

    def get_is_duplicate(self, connection) -> Optional[bool]:
        return None

    def get_account_type(self, connection) -> str:
        return "PRODUCTION"


class MergeAccountDetailsSerializer(_MergeAccountSerializer):
    """Merge's AccountDetails: one connection, seen with its account token."""

    integration = serializers.CharField(source="integration.name")
    integration_slug = serializers.CharField(source="integration.slug")
    end_user_organization_name = serializers.SerializerMethodField()
    end_user_email_address = serializers.SerializerMethodField()
    webhook_listener_url = serializers.SerializerMethodField()

    def get_end_user_organization_name(self, connection) -> Optional[str]:
        return connection.end_user_organization_name or None

    def get_end_user_email_address(self, connection) -> Optional[str]:
        return connection.end_user_email or None

    def get_webhook_listener_url(self, connection) -> Optional[str]:
        return None


class MergeLinkedAccountIntegrationSerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())
    image = serializers.SerializerMethodField()
    square_image = serializers.SerializerMethodField()
    color = serializers.SerializerMethodField()
    passthrough_available = serializers.SerializerMethodField()

    def get_image(self, integration) -> Optional[str]:
        return integration.logo_url or None

    def get_square_image(self, integration) -> Optional[str]:
        return None

    def get_color(self, integration) -> str:
        return "#000000"

    def get_passthrough_available(self, integration) -> bool:
        return True


class MergeLinkedAccountSerializer(_MergeAccountSerializer):
    """Merge's AccountDetailsAndActions. The SDK requires the string fields: they are sent, empty if unknown."""

    status_detail = serializers.SerializerMethodField()
    end_user_organization_name = serializers.CharField()
    end_user_email_address = serializers.CharField(source="end_user_email")
    webhook_listener_url = serializers.SerializerMethodField()
    integration = MergeLinkedAccountIntegrationSerializer()
    integration_specific_fields = serializers.SerializerMethodField()

    def get_status_detail(self, connection) -> Optional[str]:
        return connection.status_detail or None

    def get_webhook_listener_url(self, connection) -> str:
        return ""

    def get_integration_specific_fields(self, connection) -> dict:
        return {}


class MergeSyncStatusSerializer(serializers.Serializer):
    """Merge's SyncStatus of one model of a connection."""

    # Enums as documented strings: a shared choice set would collide with other `status` enums in the schema.
    model_name = serializers.CharField(help_text="The model's name as the catalog declares it.")
    model_id = serializers.CharField(help_text="`<category of the URL>.<model_name>`.")
    last_sync_start = serializers.DateTimeField(allow_null=True, format=ISO_UTC)
    next_sync_start = serializers.DateTimeField(allow_null=True, format=ISO_UTC)
    last_sync_result = serializers.CharField(allow_null=True, help_text=f"One of {', '.join(SYNC_STATUSES)}.")
    last_sync_finished = serializers.DateTimeField(allow_null=True, format=ISO_UTC)
    data_fresh_as_of = serializers.DateTimeField(allow_null=True, format=ISO_UTC)
    historical_data_since = serializers.DateTimeField(allow_null=True, format=ISO_UTC)
    status = serializers.CharField(help_text=f"One of {', '.join(SYNC_STATUSES)}.")
    sync_status_reason = serializers.CharField(allow_null=True,
                                               help_text="RATE_LIMITED, WAITING_ON_OTHER_MODELS or null.")
    is_initial_sync = serializers.BooleanField()
    selective_sync_configurations_usage = serializers.CharField(allow_null=True,
                                                                help_text="IN_NEXT_SYNC, IN_LAST_SYNC or null.")


class MergeLinkedAccountsQuerySerializer(serializers.Serializer):
    """The linked-accounts filters we apply (blank means absent); the SDK's other filters are accepted and ignored."""

    id = serializers.CharField(required=False, allow_blank=True)
    ids = serializers.CharField(required=False, allow_blank=True, help_text="Comma-separated connection ids.")
    end_user_origin_id = serializers.CharField(required=False, allow_blank=True)
    end_user_origin_ids = serializers.CharField(required=False, allow_blank=True,
                                                help_text="Comma-separated end-user ids.")
    integration_name = serializers.CharField(required=False, allow_blank=True,
                                             help_text="Integration name or slug, case-insensitive.")
    status = serializers.ChoiceField(MERGE_ACCOUNT_STATUSES, required=False, allow_blank=True)


PassthroughRequest = inline_serializer("MergeDataPassthrough", {
    "method": serializers.ChoiceField(choices=services.METHODS),
    "path": serializers.CharField(help_text="Relative to the integration's base URL; may carry a query string."),
    "base_url_override": serializers.CharField(required=False, allow_null=True),
    "data": serializers.CharField(required=False, allow_null=True, help_text="The raw request body, sent as-is."),
    "multipart_form_data": serializers.ListField(required=False, allow_null=True, child=inline_serializer(
        "MergeMultipartFormField", {
            "name": serializers.CharField(), "data": serializers.CharField(),
            "encoding": serializers.ChoiceField(choices=envelopes.MULTIPART_ENCODINGS, required=False),
            "file_name": serializers.CharField(required=False), "content_type": serializers.CharField(required=False),
        })),
    "headers": serializers.DictField(required=False, allow_null=True),
    "request_format": serializers.ChoiceField(choices=list(envelopes.REQUEST_FORMATS), required=False, allow_null=True),
    "normalize_response": serializers.BooleanField(required=False, allow_null=True),
})
RemoteResponse = inline_serializer("MergeRemoteResponse", {
    "method": serializers.CharField(), "path": serializers.CharField(),
    "status": serializers.IntegerField(help_text="The upstream's HTTP status."),
    "response": serializers.JSONField(help_text="Parsed JSON, text, null, or base64 of gzip bytes (BASE64_GZIP)."),
    "response_headers": serializers.DictField(),
    "response_type": serializers.ChoiceField(choices=["JSON", "BASE64_GZIP"]),
})
AccountToken = inline_serializer("MergeAccountToken", {
    "account_token": serializers.CharField(), "id": serializers.CharField(),
    "integration": inline_serializer("MergeAccountTokenIntegration", {
        "name": serializers.CharField(), "slug": serializers.CharField(),
        "categories": serializers.ListField(child=serializers.CharField()),
    }),
})



class LinkTokenRequest(serializers.Serializer):
    """The SDK's EndUserDetailsRequest: the fields the connect flow uses; the others are accepted and ignored."""

    end_user_origin_id = serializers.CharField(max_length=255)
    end_user_email_address = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    end_user_organization_name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    categories = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
    integration = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    link_expiry_mins = serializers.IntegerField(required=False, allow_null=True, default=None)


LinkToken = inline_serializer("MergeLinkToken", {
    "link_token": serializers.CharField(), "integration_name": serializers.CharField(allow_null=True),
    "magic_link_url": serializers.URLField(),
})

AsyncReceipt = inline_serializer("MergeAsyncPassthroughReceipt", {"async_passthrough_receipt_id": serializers.UUIDField()})

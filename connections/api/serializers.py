from rest_framework import serializers

from connections.models import Connection, Function, Integration


class IntegrationSerializer(serializers.ModelSerializer):
    passthrough_function = serializers.CharField(source="passthrough_function_name", read_only=True)

    class Meta:
        model = Integration
        fields = ["slug", "name", "description", "base_url", "auth_scheme", "categories", "rate_limits", "pause",
                  "allowed_override_hosts", "docs_url", "logo_url", "passthrough_function"]


class FunctionSerializer(serializers.ModelSerializer):
    integration = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Function
        fields = ["name", "description", "parameters", "output", "type", "integration"]


class ConnectionSerializer(serializers.ModelSerializer):
    integration = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Connection
        fields = ["id", "integration", "end_user_id", "label", "end_user_email", "end_user_organization_name",
                  "status", "status_detail", "created_at", "updated_at", "last_used_at"]
        extra_kwargs = {"last_used_at": {"help_text": "When a call last went through this connection (recorded at "
                                                      "most once a minute)."}}


class ConnectionCreatedSerializer(ConnectionSerializer):
    account_token = serializers.CharField(read_only=True, help_text="Shown once. Store it: it cannot be retrieved again.")

    class Meta(ConnectionSerializer.Meta):
        fields = ConnectionSerializer.Meta.fields + ["account_token"]


class ConnectionCreateSerializer(serializers.Serializer):
    integration = serializers.CharField(help_text="Integration slug.")
    end_user_id = serializers.CharField(max_length=255)
    credentials = serializers.JSONField(help_text="Scheme-specific, e.g. {\"token\": \"...\"} for bearer. Never shown back.")
    label = serializers.CharField(max_length=255, required=False, default="")
    end_user_email = serializers.CharField(max_length=255, required=False, default="")
    end_user_organization_name = serializers.CharField(max_length=255, required=False, default="")


class WebhookSettingsSerializer(serializers.Serializer):
    url = serializers.CharField(allow_null=True, max_length=2000,
                                help_text="https URL that receives events; null: no webhook.")
    events = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list,
                                   help_text="Events to receive; empty or absent: all.")
    secret_set = serializers.BooleanField(read_only=True, help_text="The signing secret is never shown again.")


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="whsec_…: shown once; the previous secret keeps "
                                                             "verifying for 24 h.")


class ConnectSessionCreateSerializer(serializers.Serializer):
    end_user_id = serializers.CharField(max_length=255)
    end_user_email = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    end_user_organization_name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    integrations = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    redirect_url = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    connection_id = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1)
    expires_in_minutes = serializers.IntegerField(required=False, default=30,
                                                  help_text="Lifetime of the session, 1 to 10080 minutes.")


class ConnectSessionCreatedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Opaque; shown once.")
    connect_url = serializers.URLField(help_text="Send the end user's browser here.")
    expires_at = serializers.DateTimeField()


class PublicTokenExchangeSerializer(serializers.Serializer):
    account_token = serializers.CharField()
    connection_id = serializers.IntegerField()
    integration = serializers.CharField(help_text="Integration slug.")
    end_user_id = serializers.CharField()

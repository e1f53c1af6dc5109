from rest_framework import serializers

from passthrough.models import FunctionCall


class FunctionCallSerializer(serializers.ModelSerializer):
    integration = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    function = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = FunctionCall
        fields = ["id", "connection", "integration", "function", "dialect", "mode", "method", "url",
                  "request_headers", "request_body", "request_body_truncated", "request_size",
                  "response_status", "response_headers", "response_body", "response_body_truncated", "response_size",
                  "duration_ms", "error", "started_at", "created_at"]

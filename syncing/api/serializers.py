from rest_framework import serializers

ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"


class RecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    remote_id = serializers.CharField()
    data = serializers.JSONField()
    remote_updated_at = serializers.DateTimeField(format=ISO_UTC, allow_null=True)
    created_at = serializers.DateTimeField(format=ISO_UTC)
    modified_at = serializers.DateTimeField(format=ISO_UTC, help_text="When our copy last changed.")
    remote_was_deleted = serializers.BooleanField()


class RecordPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RecordSerializer(many=True)


class RecordQuerySerializer(serializers.Serializer):
    modified_after = serializers.DateTimeField(required=False, help_text="ISO-8601; strictly after, on modified_at.")
    include_deleted = serializers.BooleanField(required=False, default=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, default=100, min_value=1,
                                         help_text="At most 1000 (larger is clamped).")


class SyncCountsSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    deleted = serializers.IntegerField()
    skipped = serializers.IntegerField()
    pages = serializers.IntegerField()
    requests = serializers.IntegerField()
    records = serializers.IntegerField(help_text="Stored records not deleted upstream.")


class SyncStatusSerializer(serializers.Serializer):
    model = serializers.CharField()
    enabled = serializers.BooleanField()
    frequency_seconds = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(help_text="SYNCING, DONE, FAILED, PARTIALLY_SYNCED, PAUSED or DISABLED.")
    last_sync_result = serializers.CharField(allow_null=True)
    last_sync_start = serializers.CharField(allow_null=True)
    last_sync_finished = serializers.CharField(allow_null=True)
    next_sync_start = serializers.CharField(allow_null=True)
    is_initial_sync = serializers.BooleanField()
    data_fresh_as_of = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    counts = SyncCountsSerializer(help_text="Of the last finished run, plus the stored record count.")


class SyncStatusListSerializer(serializers.Serializer):
    results = SyncStatusSerializer(many=True)


class SyncRequestSerializer(serializers.Serializer):
    models = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True,
                                   help_text="Default: every enabled model.")
    full = serializers.BooleanField(required=False, default=False, help_text="Fetch everything, detect deletions.")


class SyncModelUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()

from django.db import transaction

from connections import crypto
from connections.models import ApiKey, Connection, Integration, Organization
from integration_platform.commands import JsonCommand

ENCRYPTED_FIELDS = [
    (Connection, "credentials_ciphertext"),
    (ApiKey, "key_ciphertext"),
    (Integration, "oauth_client_secret_ciphertext"),
    (Organization, "webhook_secret_ciphertext"),
]


class Command(JsonCommand):
    help = "Re-encrypt every stored secret with the first of PLATFORM_ENCRYPTION_KEYS (after prepending a new key)."

    @transaction.atomic
    def run(self, **options):
        counts = {}
        for model, field in ENCRYPTED_FIELDS:
            rows = model.objects.exclude(**{field: ""}).only("pk", field)
            for row in rows:
                setattr(row, field, crypto.rotate(getattr(row, field)))
                row.save(update_fields=[field])
            counts[f"{model._meta.model_name}.{field}"] = len(rows)
        return {"rotated": counts}

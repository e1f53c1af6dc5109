import pytest

from connections import crypto
from connections.models import ApiKey, Connection, Function
from tests.factories import make_integration


@pytest.mark.django_db
class TestIntegration:
    def test_saving_an_integration_creates_its_passthrough_function(self):
        integration = make_integration(slug="slack", base_url="https://slack.com/api")
        function = Function.objects.get(integration=integration)
        assert function.name == "slack-passthrough-request"
        assert function.type == "passthrough"
        assert function.parameters["required"] == ["method", "url"]
        assert set(function.parameters["properties"]) == {"method", "url", "body", "headers", "query"}

    def test_renaming_the_slug_renames_the_function(self):
        integration = make_integration(slug="old")
        integration.slug = "new"
        integration.save()
        assert list(Function.objects.values_list("name", flat=True)) == ["new-passthrough-request"]

    def test_every_parameter_schema_node_has_a_json_type(self):
        # The Integry SDK rejects schema nodes without a `type` (or with "integer").
        parameters = make_integration().functions.get().parameters
        allowed = {"string", "number", "boolean", "null", "object", "array"}
        assert parameters["type"] in allowed
        assert all(node["type"] in allowed for node in parameters["properties"].values())


@pytest.mark.django_db
class TestConnection:
    def test_credentials_are_encrypted_at_rest(self, alice_connection):
        connection, _ = alice_connection
        row = Connection.objects.values("credentials_ciphertext").get(pk=connection.pk)
        assert "tok-SECRET-123456" not in row["credentials_ciphertext"]
        assert Connection.objects.get(pk=connection.pk).credentials == {"token": "tok-SECRET-123456"}

    def test_account_token_is_stored_hashed_and_found_by_lookup(self, alice_connection):
        connection, token = alice_connection
        row = Connection.objects.values().get(pk=connection.pk)
        assert token not in str(row)
        assert Connection.objects.for_account_token(token).get() == connection
        assert not Connection.objects.for_account_token(token + "x").exists()

    def test_repr_and_str_show_no_secret(self, alice_connection):
        connection, token = alice_connection
        for text in (repr(connection), str(connection)):
            assert "tok-SECRET" not in text and token not in text


@pytest.mark.django_db
class TestApiKey:
    def test_key_is_shown_once_and_stored_hashed_and_encrypted(self, alice):
        row = ApiKey.objects.values().get(pk=alice.api_key.pk)
        assert alice.key not in str(row)
        assert alice.key.startswith(row["key_id"] + ".")
        assert ApiKey.objects.get(pk=alice.api_key.pk).secret() == alice.key

    def test_repr_shows_no_secret(self, alice):
        assert alice.key.split(".")[1] not in repr(alice.api_key) + str(alice.api_key)


class TestCrypto:
    def test_round_trip(self, settings):
        assert crypto.decrypt_json(crypto.encrypt_json({"a": "b"})) == {"a": "b"}

    def test_rotation_keeps_old_ciphertext_readable(self, settings):
        from cryptography.fernet import Fernet

        old = crypto.encrypt_text("s3cret")
        settings.PLATFORM_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.PLATFORM_ENCRYPTION_KEYS]
        assert crypto.decrypt_text(old) == "s3cret"
        rotated = crypto.rotate(old)
        settings.PLATFORM_ENCRYPTION_KEYS = settings.PLATFORM_ENCRYPTION_KEYS[:1]
        assert crypto.decrypt_text(rotated) == "s3cret"

    def test_unknown_key_error_carries_no_secret(self, settings):
        from cryptography.fernet import Fernet

        ciphertext = crypto.encrypt_text("s3cret-value")
        settings.PLATFORM_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
        with pytest.raises(crypto.DecryptionError) as error:
            crypto.decrypt_text(ciphertext)
        assert "s3cret" not in str(error.value) and ciphertext not in str(error.value)


@pytest.mark.django_db
def test_rotate_encryption_keys_re_encrypts_every_secret_with_the_new_key(alice_connection, settings):
    import io
    import json

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    connection, _ = alice_connection
    old_keys = list(settings.PLATFORM_ENCRYPTION_KEYS)
    settings.PLATFORM_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old_keys]
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["rotated"]["connection.credentials_ciphertext"] == 1
    settings.PLATFORM_ENCRYPTION_KEYS = settings.PLATFORM_ENCRYPTION_KEYS[:1]  # the old key is gone
    assert Connection.objects.get(pk=connection.pk).credentials == {"token": "tok-SECRET-123456"}

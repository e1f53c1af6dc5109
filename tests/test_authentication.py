"""API-key authentication of the native API (`/api/v1/*`)."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from connections.authentication import ApiCaller, bearer_value
from connections.models import ApiKey, Connection

URL = "/api/v1/integrations"


def client_with(header=None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def assert_refused(response):
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "error_details"}
    assert body["error"]
    assert isinstance(body["error_details"], list)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
class TestRefusedKeys:
    def test_request_without_authorization_header_is_refused_with_401(self):
        assert_refused(client_with().get(URL))

    def test_unknown_key_is_refused_with_401(self, alice):
        assert_refused(client_with("Bearer ak_0000000000000000.not-a-real-secret").get(URL))

    def test_right_key_id_with_wrong_secret_is_refused_with_401(self, alice):
        assert_refused(client_with(f"Bearer {alice.api_key.key_id}.wrong-secret").get(URL))

    @pytest.mark.parametrize("header", [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer ak_",
        "Bearer ak_0000000000000000",
        "Bearer ak_0000000000000000.",
        "Bearer .secret-without-key-id",
        "Bearer not-a-key-at-all",
    ])
    def test_malformed_authorization_header_is_refused_with_401(self, alice, header):
        assert_refused(client_with(header).get(URL))

    def test_revoked_key_is_refused_with_401(self, alice):
        ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now())
        assert_refused(alice.client.get(URL))

    def test_refusal_is_json_on_every_native_endpoint(self, alice_connection):
        connection, _ = alice_connection
        for path in ("/api/v1/functions", "/api/v1/connections", f"/api/v1/connections/{connection.pk}",
                     "/api/v1/function-calls"):
            assert_refused(client_with().get(path))

    def test_refused_create_writes_nothing(self, integration):
        response = client_with("Bearer ak_0000000000000000.nope").post(
            "/api/v1/connections", {"integration": integration.slug, "end_user_id": "u", "credentials": {"token": "t"}},
            format="json",
        )
        assert_refused(response)
        assert not Connection.objects.exists()


@pytest.mark.django_db
class TestValidKey:
    def test_valid_key_is_accepted(self, alice):
        assert alice.client.get(URL).status_code == 200

    def test_valid_key_sets_last_used_at(self, alice):
        assert alice.api_key.last_used_at is None
        alice.client.get(URL)
        alice.api_key.refresh_from_db()
        assert alice.api_key.last_used_at is not None

    def test_scheme_word_is_case_insensitive(self, alice):
        assert client_with(f"bearer {alice.key}").get(URL).status_code == 200

    def test_key_without_bearer_scheme_is_accepted(self, alice):
        assert client_with(alice.key).get(URL).status_code == 200

    def test_another_active_key_of_the_same_organization_still_works_after_one_is_revoked(self, alice):
        _, second_key = ApiKey.generate(alice.organization)
        ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now())
        assert client_with(f"Bearer {second_key}").get(URL).status_code == 200


class TestBearerValue:
    @pytest.mark.parametrize("header, expected", [
        ("Bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("abc", "abc"),
        ("Bearer", ""),
    ])
    def test_strips_one_optional_bearer_scheme(self, header, expected):
        assert bearer_value(header) == expected


@pytest.mark.django_db
def test_api_caller_str_names_the_key_id_not_the_secret(alice):
    text = str(ApiCaller(alice.api_key))
    assert alice.api_key.key_id in text
    assert alice.key.split(".", 1)[1] not in text

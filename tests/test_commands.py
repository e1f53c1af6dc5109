"""Management commands: the last line of output is JSON, the result or `{error, error_details}` with exit code 1."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from connections import services
from connections.models import ApiKey, Connection, Function, Integration, Organization
from passthrough.models import FunctionCall
from tests.factories import make_function_call, organization

DEMO_CATALOG = Path(settings.BASE_DIR) / "catalog" / "demo.json"
GOOD_ENTRY = {"slug": "good", "name": "Good", "base_url": "https://api.good.test", "auth": {"scheme": "bearer"}}


def run(*args):
    """Run a command; returns (exit code, last output line parsed as JSON) and the whole output."""
    out = StringIO()
    code = 0
    try:
        call_command(*args, stdout=out)
    except SystemExit as exit:
        code = exit.code
    text = out.getvalue()
    return code, json.loads(text.strip().splitlines()[-1]), text


def write_catalog(tmp_path, document):
    path = tmp_path / "catalog.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def demo_slugs():
    return sorted(entry["slug"] for entry in json.loads(DEMO_CATALOG.read_text())["integrations"])


@pytest.mark.django_db
class TestLoadCatalog:
    def test_demo_catalog_creates_every_integration(self):
        code, result, _ = run("load_catalog", str(DEMO_CATALOG))
        assert code == 0
        assert result == {"created": len(demo_slugs()), "updated": 0}
        assert sorted(Integration.objects.values_list("slug", flat=True)) == demo_slugs()

    def test_every_loaded_integration_gets_its_passthrough_function(self):
        run("load_catalog", str(DEMO_CATALOG))
        assert sorted(Function.objects.values_list("name", flat=True)) == [f"{s}-passthrough-request" for s in demo_slugs()]

    def test_rerun_updates_and_changes_nothing(self):
        run("load_catalog", str(DEMO_CATALOG))
        before = list(Integration.objects.values("pk", "slug", "base_url", "auth_scheme", "auth_config", "rate_limits"))
        code, result, _ = run("load_catalog", str(DEMO_CATALOG))
        assert code == 0
        assert result == {"created": 0, "updated": len(demo_slugs())}
        assert list(Integration.objects.values("pk", "slug", "base_url", "auth_scheme", "auth_config", "rate_limits")) == before
        assert Function.objects.count() == len(demo_slugs())

    def test_changed_entry_updates_the_existing_integration(self, tmp_path):
        run("load_catalog", write_catalog(tmp_path, {"integrations": [GOOD_ENTRY]}))
        changed = {**GOOD_ENTRY, "name": "Better", "rate_limits": [{"requests": 5, "per_seconds": 1}]}
        code, result, _ = run("load_catalog", write_catalog(tmp_path, {"integrations": [changed]}))
        assert (code, result) == (0, {"created": 0, "updated": 1})
        integration = Integration.objects.get(slug="good")
        assert integration.name == "Better"
        assert integration.rate_limits == [{"requests": 5, "per_seconds": 1}]

    def test_oauth_client_secret_is_stored_encrypted_not_in_auth_config(self, tmp_path):
        entry = {**GOOD_ENTRY, "auth": {"scheme": "oauth2", "authorize_url": "https://good.test/a",
                                        "token_url": "https://good.test/t", "client_secret": "client-SECRET-987"}}
        _, _, output = run("load_catalog", write_catalog(tmp_path, {"integrations": [entry]}))
        integration = Integration.objects.get(slug="good")
        assert "client_secret" not in integration.auth_config
        assert "client-SECRET-987" not in integration.oauth_client_secret_ciphertext
        assert integration.oauth_client_secret() == "client-SECRET-987"
        assert "client-SECRET-987" not in output

    @pytest.mark.parametrize("bad_entry, detail", [
        ({**GOOD_ENTRY, "slug": "bad", "auth": {"scheme": "kerberos"}}, "integrations[1] (bad) auth.scheme:"),
        ({**GOOD_ENTRY, "slug": "bad", "auth": {"scheme": ["bearer"]}}, "integrations[1] (bad) auth.scheme:"),
        ({k: v for k, v in {**GOOD_ENTRY, "slug": "bad"}.items() if k != "base_url"},
         "integrations[1] (bad) base_url: This field is required."),
        ({**GOOD_ENTRY, "slug": "bad", "base_url": "api.bad.test"}, "integrations[1] (bad) base_url:"),
        (GOOD_ENTRY, "integrations[1] (good) slug: Duplicate slug."),
        ({**GOOD_ENTRY, "slug": "bad", "rate_limits": [{"requests": 0, "per_seconds": 1}]},
         "integrations[1] (bad) rate_limits[0]:"),
        ({**GOOD_ENTRY, "slug": "bad", "rate_limits": {"requests": 5}}, "integrations[1] (bad) rate_limits:"),
        ({**GOOD_ENTRY, "slug": "bad", "pause": "everyone"},
         'integrations[1] (bad) pause: Must be "connection" (an upstream rate-limit signal pauses only the connection'),
        ({**GOOD_ENTRY, "slug": "bad", "auth": {"scheme": "api_key"}}, "integrations[1] (bad) auth.name:"),
        ({**GOOD_ENTRY, "slug": "Bad Slug"}, "integrations[1] (Bad Slug) slug:"),
        ({**GOOD_ENTRY, "slug": ["bad"]}, "integrations[1] slug:"),
        ({**GOOD_ENTRY, "slug": "bad", "colour": "red"}, "integrations[1] (bad) colour: Unknown field."),
        ("not an object", "integrations[1] Must be an object."),
    ])
    def test_bad_entry_fails_naming_it_and_writes_nothing(self, tmp_path, bad_entry, detail):
        code, result, _ = run("load_catalog", write_catalog(tmp_path, {"integrations": [GOOD_ENTRY, bad_entry]}))
        assert code == 1
        assert set(result) == {"error", "error_details"}
        assert any(line.startswith(detail) for line in result["error_details"]), result["error_details"]
        assert not Integration.objects.exists()
        assert not Function.objects.exists()

    def test_pause_integration_is_loaded_and_connection_is_the_default(self, tmp_path):
        other = {**GOOD_ENTRY, "slug": "app-quota", "pause": "integration"}
        code, _, _ = run("load_catalog", write_catalog(tmp_path, {"integrations": [GOOD_ENTRY, other]}))
        assert code == 0
        assert dict(Integration.objects.values_list("slug", "pause")) == {"good": "connection", "app-quota": "integration"}

    def test_bad_entry_leaves_existing_integrations_unchanged(self, tmp_path):
        run("load_catalog", write_catalog(tmp_path, {"integrations": [GOOD_ENTRY]}))
        renamed = {**GOOD_ENTRY, "name": "Renamed"}
        code, _, _ = run("load_catalog", write_catalog(tmp_path, {"integrations": [renamed, {"slug": "bad"}]}))
        assert code == 1
        assert Integration.objects.get(slug="good").name == "Good"

    @pytest.mark.parametrize("document", ['{"integrations": [', "", "integrations: []"])
    def test_file_that_is_not_json_fails(self, tmp_path, document):
        code, result, _ = run("load_catalog", write_catalog(tmp_path, document))
        assert code == 1
        assert result["error"] == "Catalog file is not valid JSON."
        assert len(result["error_details"]) == 1

    @pytest.mark.parametrize("document", [[GOOD_ENTRY], {"integrations": GOOD_ENTRY}, {}])
    def test_document_without_an_integrations_list_fails(self, tmp_path, document):
        code, result, _ = run("load_catalog", write_catalog(tmp_path, document))
        assert code == 1
        assert result["error"] == "Invalid catalog."
        assert not Integration.objects.exists()

    def test_missing_file_fails(self, tmp_path):
        missing = str(tmp_path / "nope.json")
        code, result, _ = run("load_catalog", missing)
        assert code == 1
        assert result["error"] == "Cannot read catalog file."
        assert result["error_details"][0].startswith(missing)


@pytest.mark.django_db
class TestCreateApiKey:
    def test_prints_the_key_and_its_id(self):
        code, result, _ = run("create_api_key", "alice")
        assert code == 0
        assert result["key"].startswith(result["key_id"] + ".")
        assert ApiKey.objects.get(key_id=result["key_id"]).organization.name == "alice"

    def test_printed_key_authenticates_against_the_api(self):
        _, result, _ = run("create_api_key", "alice")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {result['key']}")
        assert client.get("/api/v1/integrations").status_code == 200

    def test_second_key_joins_the_existing_organization(self):
        run("create_api_key", "alice")
        run("create_api_key", "alice", "--name", "ci")
        assert Organization.objects.filter(name="alice").count() == 1
        assert ApiKey.objects.filter(organization__name="alice").count() == 2

    def test_key_is_not_stored_in_clear(self):
        _, result, _ = run("create_api_key", "alice")
        assert result["key"] not in str(ApiKey.objects.values().get(key_id=result["key_id"]))


def create_connection_args(**overrides):
    options = {"--org": "alice", "--integration": "acme", "--end-user": "user-1",
               "--credentials": '{"token": "tok-SECRET-123456"}', **overrides}
    return ["create_connection"] + [part for pair in options.items() for part in pair]


@pytest.mark.django_db
class TestCreateConnection:
    def test_prints_id_and_account_token(self, integration):
        organization("alice")
        code, result, _ = run(*create_connection_args())
        assert code == 0
        assert set(result) == {"id", "account_token"}
        connection = services.connection_for_account_token(organization("alice"), result["account_token"])
        assert connection.pk == result["id"]
        assert connection.end_user_id == "user-1"
        assert connection.credentials == {"token": "tok-SECRET-123456"}

    def test_output_does_not_echo_the_credentials(self, integration):
        organization("alice")
        _, _, output = run(*create_connection_args())
        assert "tok-SECRET-123456" not in output

    @pytest.mark.parametrize("credentials", ['{"token": "tok-SECRET-123456"', "token=tok-SECRET-123456", ""])
    def test_credentials_that_are_not_json_fail(self, integration, credentials):
        organization("alice")
        code, result, output = run(*create_connection_args(**{"--credentials": credentials}))
        assert code == 1
        assert result == {"error": "Invalid input.", "error_details": ["credentials: Must be JSON."]}
        assert "tok-SECRET-123456" not in output
        assert not Connection.objects.exists()

    @pytest.mark.parametrize("credentials, detail", [
        ('{"access_token": "x"}', "credentials.token: This field is required."),
        ('["tok"]', "credentials: Must be a JSON object."),
    ])
    def test_credentials_the_scheme_refuses_fail(self, integration, credentials, detail):
        organization("alice")
        code, result, _ = run(*create_connection_args(**{"--credentials": credentials}))
        assert code == 1
        assert detail in result["error_details"]
        assert not Connection.objects.exists()

    def test_unknown_organization_fails_and_is_not_created(self, integration):
        code, result, _ = run(*create_connection_args(**{"--org": "nobody"}))
        assert code == 1
        assert result["error_details"] == ["org: Unknown organization 'nobody'."]
        assert not Organization.objects.filter(name="nobody").exists()

    def test_unknown_integration_fails(self):
        organization("alice")
        code, result, _ = run(*create_connection_args(**{"--integration": "nope"}))
        assert code == 1
        assert result["error_details"][0].startswith("integration:")
        assert not Connection.objects.exists()


def age(call, days):
    FunctionCall.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(days=days))


@pytest.mark.django_db
class TestPurgeFunctionCalls:
    def test_deletes_only_rows_older_than_the_given_days(self):
        org = organization("alice")
        old, recent, fresh = make_function_call(org), make_function_call(org), make_function_call(org)
        age(old, 8)
        age(recent, 6)
        code, result, _ = run("purge_function_calls", "--days", "7")
        assert (code, result) == (0, {"deleted": 1})
        assert set(FunctionCall.objects.values_list("pk", flat=True)) == {recent.pk, fresh.pk}

    def test_default_retention_comes_from_settings(self, settings):
        settings.FUNCTION_CALL_RETENTION_DAYS = 3
        org = organization("alice")
        old, kept = make_function_call(org), make_function_call(org)
        age(old, 4)
        age(kept, 2)
        _, result, _ = run("purge_function_calls")
        assert result == {"deleted": 1}
        assert list(FunctionCall.objects.values_list("pk", flat=True)) == [kept.pk]

    def test_purges_every_organization(self):
        calls = [make_function_call(organization(name)) for name in ("alice", "bob")]
        for call in calls:
            age(call, 40)
        assert run("purge_function_calls", "--days", "30")[1] == {"deleted": 2}

"""Calling typed functions: `POST /api/v1/functions/{name}` against a real local upstream that records what it got
(spec/functions.md §3): validation before anything is sent, request building, path-parameter encoding, call log."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from connections.models import Function
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.network import TOKEN, reply

ZOO = Path(__file__).resolve().parent / "fixtures" / "openapi" / "zoo-3.1.json"


@pytest.fixture
def zoo(db, local_server):
    integration = make_integration(slug="zoo", base_url=f"{local_server.url}/v2")
    call_command("import_openapi", "--integration", "zoo", str(ZOO), stdout=open("/dev/null", "w"))
    return integration


@pytest.fixture
def token(alice, zoo):
    return make_connection(alice.organization, zoo)[1]


def call(tenant, token, name, arguments):
    return tenant.client.post(f"/api/v1/functions/{name}", arguments, format="json", HTTP_X_ACCOUNT_TOKEN=token)


class TestRequestBuilding:
    def test_query_types_headers_and_injected_credentials(self, alice, token, local_server):
        local_server.app = lambda r: reply(200, [("Content-Type", "application/json")], b'[{"id": "a1"}]')
        answer = call(alice, token, "zoo-list-animals",
                      {"limit": 5, "species": ["cat", "big dog"], "vaccinated": True, "X-Trace": "t-1"})
        assert answer.status_code == 200
        assert answer.json() == {"network_code": "200", "output": [{"id": "a1"}]}
        [received] = local_server.requests
        assert received.method == "GET"
        assert received.path == "/v2/animals?limit=5&species=cat&species=big+dog&vaccinated=true"
        assert received.header("X-Trace") == "t-1"
        assert received.header("Authorization") == f"Bearer {TOKEN}"
        assert received.header("X-Account-Token") is None

    def test_body_properties_are_sent_as_one_json_object_and_null_means_absent(self, alice, token, local_server):
        local_server.app = lambda r: reply(201, [("Content-Type", "application/json")], b'{"id": "a2"}')
        answer = call(alice, token, "zoo-create-animal", {"name": "Rex", "weight": 12.5, "nickname": None})
        assert answer.json() == {"network_code": "201", "output": {"id": "a2"}}
        [received] = local_server.requests
        assert (received.method, received.path) == ("POST", "/v2/animals")
        assert received.header("Content-Type") == "application/json"
        assert json.loads(received.body) == {"name": "Rex", "weight": 12.5}

    def test_body_argument_is_the_whole_body(self, alice, token, local_server):
        call(alice, token, "zoo-tag-animal", {"animalId": "a1", "body": ["fluffy", "old"]})
        [received] = local_server.requests
        assert (received.method, received.path) == ("PATCH", "/v2/animals/a1")
        assert json.loads(received.body) == ["fluffy", "old"]

    def test_collided_body_goes_whole_beside_the_query_parameter(self, alice, token, local_server):
        call(alice, token, "zoo-replace-animal", {"animalId": "a1", "name": "q", "body": {"name": "Rex"}})
        [received] = local_server.requests
        assert (received.method, received.path) == ("PUT", "/v2/animals/a1?name=q")
        assert json.loads(received.body) == {"name": "Rex"}

    def test_upstream_error_status_is_reported_not_raised(self, alice, token, local_server):
        local_server.app = lambda r: reply(404, [("Content-Type", "text/plain")], b"no such animal")
        answer = call(alice, token, "zoo-get-animals-animalid", {"animalId": "zzz"})
        assert answer.status_code == 200
        assert answer.json() == {"network_code": "404", "output": "no such animal"}

    def test_call_log_row_names_the_function(self, alice, token, local_server):
        call(alice, token, "zoo-list-keepers", {})
        [row] = FunctionCall.objects.all()
        assert row.function.name == "zoo-list-keepers"
        assert row.dialect == "native"
        assert row.url == f"{local_server.url}/v2/keepers"
        assert row.request_headers["Authorization"] == "<redacted>"


class TestValidation:
    def test_every_violation_is_listed_and_nothing_is_sent_or_logged(self, alice, token, local_server):
        answer = call(alice, token, "zoo-create-animal",
                      {"weight": -1, "nickname": 7, "parent": "x", "colour": "red"})
        assert answer.status_code == 400
        body = answer.json()
        assert body["error"] == "Invalid input."
        assert sorted(body["error_details"]) == sorted([
            "name: This parameter is required.",
            "colour: Unknown argument.",
            "weight: -1 is less than or equal to the minimum of 0",
            "nickname: 7 is not of type 'string', 'null'",
            "parent: 'x' is not of type 'object'",
        ])
        assert local_server.requests == []
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("arguments, detail", [
        ({"limit": "5"}, "limit: '5' is not of type 'integer'"),
        ({"limit": 0}, "limit: 0 is less than the minimum of 1"),
        ({"species": "cat"}, "species: 'cat' is not of type 'array'"),
        ({"species": [1]}, "species.0: 1 is not of type 'string'"),
        ({"vaccinated": "yes"}, "vaccinated: 'yes' is not of type 'boolean'"),
    ])
    def test_query_argument_types(self, alice, token, local_server, arguments, detail):
        answer = call(alice, token, "zoo-list-animals", arguments)
        assert answer.status_code == 400
        assert answer.json()["error_details"] == [detail]
        assert local_server.requests == []

    def test_arguments_must_be_an_object(self, alice, token, local_server):
        answer = call(alice, token, "zoo-list-animals", ["limit", 5])
        assert answer.status_code == 400
        assert answer.json()["error_details"] == ["arguments: Must be a JSON object of function arguments."]

    def test_path_parameter_is_required(self, alice, token, local_server):
        answer = call(alice, token, "zoo-get-animals-animalid", {})
        assert answer.json()["error_details"] == ["animalId: This parameter is required."]
        assert local_server.requests == []


class TestPathParameterEncoding:
    @pytest.mark.parametrize("value, sent", [
        ("../admin", "/v2/animals/..%2Fadmin"),
        ("a/b?c=d#e", "/v2/animals/a%2Fb%3Fc%3Dd%23e"),
        ("%2e%2e", "/v2/animals/%252e%252e"),
        ("..;/x", "/v2/animals/..%3B%2Fx"),
        ("tab\tnew\nline", "/v2/animals/tab%09new%0Aline"),
        ("ü ÿ", "/v2/animals/%C3%BC%20%C3%BF"),
        ("\\..\\", "/v2/animals/%5C..%5C"),
    ])
    def test_a_value_is_exactly_one_segment(self, alice, token, local_server, value, sent):
        answer = call(alice, token, "zoo-get-animals-animalid", {"animalId": value})
        assert answer.status_code == 200, answer.json()
        assert [r.path for r in local_server.requests] == [sent]

    @pytest.mark.parametrize("value", [".", "..", ""])
    def test_dot_segments_and_empty_values_are_refused(self, alice, token, local_server, value):
        answer = call(alice, token, "zoo-get-animals-animalid", {"animalId": value})
        assert answer.status_code == 400
        assert answer.json()["error_details"] == [f"animalId: {value!r} is not allowed as a path parameter."]
        assert local_server.requests == []


class TestLookup:
    def test_disabled_function_is_not_found(self, alice, token, local_server):
        Function.objects.filter(name="zoo-list-keepers").update(enabled=False)
        assert call(alice, token, "zoo-list-keepers", {}).status_code == 404
        assert alice.client.get("/api/v1/functions/zoo-list-keepers").status_code == 404
        assert local_server.requests == []

    def test_connection_of_another_integration_is_refused(self, alice, zoo, local_server):
        other = make_integration(slug="other", base_url=f"{local_server.url}/x")
        _, other_token = make_connection(alice.organization, other)
        answer = call(alice, other_token, "zoo-list-keepers", {})
        assert answer.status_code == 400
        assert local_server.requests == []

    def test_listing_filters_typed_functions(self, alice, zoo):
        queries = alice.client.get("/api/v1/functions", {"type": "QUERY", "integration": "zoo"}).json()["results"]
        assert [f["name"] for f in queries] == ["zoo-get-animals-animalid", "zoo-list-animals", "zoo-list-keepers"]
        actions = alice.client.get("/api/v1/functions", {"type": "action", "integration": "zoo"}).json()["results"]
        assert len(actions) == 4
        one = alice.client.get("/api/v1/functions/zoo-create-animal").json()
        assert one["type"] == "action" and one["integration"] == "zoo"
        assert one["output"]["allOf"][1]["properties"] == {"id": {"type": "string"}}

"""`manage.py import_openapi` (spec/functions.md §1-2): OpenAPI 3.0 and 3.1, naming, flattening, filters, prune."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from connections.models import Function
from tests.factories import make_integration

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openapi"
PETSTORE = FIXTURES / "swagger-petstore-3.0.yaml"  # the real Swagger Petstore 3.0 document
ZOO = FIXTURES / "zoo-3.1.json"


@pytest.fixture
def petstore(db):
    return make_integration(slug="petstore", base_url="https://petstore.test/v3",
                            auth={"scheme": "api_key", "in": "header", "name": "api_key"})


@pytest.fixture
def zoo(db):
    return make_integration(slug="zoo", base_url="https://zoo.test")


def import_openapi(*args) -> dict:
    out = StringIO()
    call_command("import_openapi", *map(str, args), stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def import_refused(*args) -> str:
    """The problem an import that fails prints as its last line (exit status 1)."""
    out = StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command("import_openapi", *map(str, args), stdout=out)
    assert exit_status.value.code == 1
    error = json.loads(out.getvalue().strip().splitlines()[-1])
    assert error["error"] == "The OpenAPI document cannot be imported."
    return error["error_details"][0]


def typed(integration):
    return {f.name: f for f in Function.objects.filter(integration=integration).exclude(type=Function.TYPE_PASSTHROUGH)}


class TestOpenApi30:
    def test_every_operation_of_the_real_petstore_becomes_a_function(self, petstore):
        summary = import_openapi("--integration", "petstore", PETSTORE)
        assert summary["integration"] == "petstore"
        assert (summary["created"], summary["updated"], summary["deleted"], summary["skipped"]) == (19, 0, 0, [])
        assert set(summary["functions"]) == set(typed(petstore))
        # Document order: paths in order, methods get, put, post, delete...
        assert summary["functions"][:3] == ["petstore-update-pet", "petstore-add-pet", "petstore-find-pets-by-status"]

    def test_query_for_get_action_for_others_and_description_from_summary_and_description(self, petstore):
        import_openapi("--integration", "petstore", PETSTORE)
        functions = typed(petstore)
        assert functions["petstore-get-pet-by-id"].type == "query"
        assert functions["petstore-delete-pet"].type == "action"
        assert functions["petstore-find-pets-by-tags"].description.startswith(
            "Finds Pets by tags\n\nMultiple tags can be provided")

    def test_parameters_schema_with_path_query_and_flattened_json_body(self, petstore):
        import_openapi("--integration", "petstore", PETSTORE)
        functions = typed(petstore)
        get_pet = functions["petstore-get-pet-by-id"]
        assert get_pet.parameters["properties"]["petId"] == {"type": "integer", "format": "int64",
                                                            "description": "ID of pet to return"}
        assert get_pet.parameters["required"] == ["petId"]
        assert get_pet.operation["method"] == "GET" and get_pet.operation["path"] == "/pet/{petId}"
        add_pet = functions["petstore-add-pet"]
        assert set(add_pet.parameters["properties"]) == {"id", "name", "category", "photoUrls", "tags", "status"}
        assert add_pet.parameters["required"] == ["name", "photoUrls"]
        assert "example" not in add_pet.parameters["properties"]["name"]  # OpenAPI-only keywords go
        assert add_pet.operation["body_media_type"] == "application/json"

    def test_output_is_the_first_2xx_json_schema(self, petstore):
        import_openapi("--integration", "petstore", PETSTORE)
        functions = typed(petstore)
        assert functions["petstore-get-inventory"].output == {
            "type": "object", "additionalProperties": {"type": "integer", "format": "int32"}}
        assert functions["petstore-delete-pet"].output is None

    def test_headers_the_auth_scheme_sets_are_left_out(self, petstore):
        import_openapi("--integration", "petstore", PETSTORE)
        assert set(typed(petstore)["petstore-delete-pet"].parameters["properties"]) == {"petId"}

    def test_array_body_is_the_body_argument(self, petstore):
        import_openapi("--integration", "petstore", PETSTORE)
        create_many = typed(petstore)["petstore-create-users-with-list-input"]
        assert create_many.parameters["properties"]["body"]["type"] == "array"
        assert "required" not in create_many.parameters  # the body is optional in the document


class TestOpenApi31:
    def test_summary_skips_cookie_and_trace_operations_with_the_reason(self, zoo):
        summary = import_openapi("--integration", "zoo", ZOO)
        assert summary["skipped"] == [{"operation": "currentKeeper", "reason": "cookie parameter 'session' cannot be sent"},
                                      {"operation": "traceKeeper", "reason": "TRACE requests are not sent through the platform"}]
        assert summary["created"] == 7

    def test_names_kebab_case_method_path_fallback_and_clash_suffix(self, zoo):
        summary = import_openapi("--integration", "zoo", ZOO)
        assert summary["functions"] == ["zoo-list-animals", "zoo-create-animal", "zoo-get-animals-animalid",
                                        "zoo-replace-animal", "zoo-tag-animal", "zoo-list-keepers", "zoo-list-keepers-2"]

    def test_body_named_body_when_a_property_collides_with_a_parameter(self, zoo):
        import_openapi("--integration", "zoo", ZOO)
        replace = typed(zoo)["zoo-replace-animal"]
        assert set(replace.parameters["properties"]) == {"animalId", "name", "body"}
        assert replace.parameters["properties"]["body"]["required"] == ["name"]
        assert replace.operation["arguments"]["body"] == {"in": "body", "name": "body"}

    def test_required_body_of_another_type_makes_body_required(self, zoo):
        import_openapi("--integration", "zoo", ZOO)
        assert typed(zoo)["zoo-tag-animal"].parameters["required"] == ["animalId", "body"]

    def test_recursive_schema_is_cut_to_an_object(self, zoo):
        import_openapi("--integration", "zoo", ZOO)
        create = typed(zoo)["zoo-create-animal"]
        assert create.parameters["properties"]["parent"] == {"type": "object"}
        assert create.parameters["properties"]["nickname"] == {"type": ["string", "null"]}
        assert create.parameters["additionalProperties"] is False

    def test_authorization_header_parameter_is_left_out(self, zoo):
        import_openapi("--integration", "zoo", ZOO)
        assert set(typed(zoo)["zoo-list-animals"].parameters["properties"]) == {"limit", "species", "vaccinated", "X-Trace"}

    def test_boolean_schemas(self, zoo, tmp_path):
        document = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"post": {
            "operationId": "postX", "parameters": [{"name": "q", "in": "query", "schema": True}],
            "requestBody": {"content": {"application/json": {"schema": True}}},
            "responses": {"200": {"description": "ok"}}}}}}
        source = tmp_path / "doc.json"
        source.write_text(json.dumps(document))
        import_openapi("--integration", "zoo", source)
        assert typed(zoo)["zoo-post-x"].parameters["properties"] == {"q": {}, "body": {}}

    def test_nullable_of_30_becomes_a_null_type(self, zoo, tmp_path):
        document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {
            "operationId": "getX", "parameters": [{"name": "q", "in": "query", "schema": {
                "type": "integer", "nullable": True, "minimum": 0, "exclusiveMinimum": True}}],
            "responses": {"200": {"description": "ok"}}}}}}
        source = tmp_path / "doc.yaml"
        source.write_text(json.dumps(document))
        import_openapi("--integration", "zoo", source)
        assert typed(zoo)["zoo-get-x"].parameters["properties"]["q"] == {"type": ["integer", "null"], "exclusiveMinimum": 0}


    def test_an_uncompilable_pattern_is_an_invalid_document(self, zoo, tmp_path):
        document = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {
            "operationId": "getX", "parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "pattern": "[a-"}}],
            "responses": {"200": {"description": "ok"}}}}}}
        source = tmp_path / "doc.json"
        source.write_text(json.dumps(document))
        assert re.search("'\\[a-' is not a 'regex'", import_refused("--integration", "zoo", source))
        assert typed(zoo) == {}


class TestFiltersReimportPrune:
    def test_tag_and_operation_filters_keep_matching_operations(self, zoo):
        summary = import_openapi("--integration", "zoo", ZOO, "--tag", "staff", "--operation", "create_animal")
        assert summary["functions"] == ["zoo-create-animal", "zoo-list-keepers", "zoo-list-keepers-2"]
        assert set(typed(zoo)) == set(summary["functions"])

    def test_reimport_updates_in_place(self, zoo):
        import_openapi("--integration", "zoo", ZOO)
        first_ids = {name: f.pk for name, f in typed(zoo).items()}
        Function.objects.filter(name="zoo-list-animals").update(description="edited")
        summary = import_openapi("--integration", "zoo", ZOO)
        assert (summary["created"], summary["updated"], summary["deleted"]) == (0, 7, 0)
        assert {name: f.pk for name, f in typed(zoo).items()} == first_ids
        assert typed(zoo)["zoo-list-animals"].description == "List animals"

    def test_prune_deletes_functions_whose_operation_left_the_document(self, zoo, tmp_path):
        import_openapi("--integration", "zoo", ZOO)
        document = json.loads(ZOO.read_text())
        del document["paths"]["/keepers"]
        smaller = tmp_path / "smaller.json"
        smaller.write_text(json.dumps(document))
        summary = import_openapi("--integration", "zoo", smaller, "--tag", "animals", "--prune")
        assert summary["deleted"] == 2
        assert "zoo-list-keepers" not in typed(zoo)
        # Left out by the filter, still in the document: kept. The passthrough function: never pruned.
        assert "zoo-replace-animal" in typed(zoo)
        assert Function.objects.filter(name="zoo-passthrough-request").exists()

    def test_without_prune_nothing_is_deleted(self, zoo, tmp_path):
        import_openapi("--integration", "zoo", ZOO)
        smaller = tmp_path / "smaller.json"
        smaller.write_text(json.dumps({**json.loads(ZOO.read_text()), "paths": {}}))
        assert import_openapi("--integration", "zoo", smaller)["deleted"] == 0
        assert len(typed(zoo)) == 7


class TestInvalid:
    @pytest.mark.parametrize("document, message", [
        ({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {"responses": "nope"}}}},
         "/paths/~1x/get/responses"),
        ({"openapi": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}, "/openapi"),
        ({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {
            "responses": {"200": {"$ref": "#/components/responses/missing"}}}}}}, "missing"),
    ])
    def test_invalid_document_names_the_place_and_writes_nothing(self, zoo, tmp_path, document, message):
        source = tmp_path / "bad.json"
        source.write_text(json.dumps(document))
        assert re.search(message, import_refused("--integration", "zoo", source))
        assert typed(zoo) == {}

    def test_not_json_or_yaml(self, zoo, tmp_path):
        source = tmp_path / "bad.yaml"
        source.write_text("openapi: [unclosed")
        assert re.search("Not valid JSON or YAML", import_refused("--integration", "zoo", source))

    def test_unreadable_source_and_unknown_integration(self, zoo, tmp_path):
        assert re.search("Cannot read", import_refused("--integration", "zoo", tmp_path / "absent.json"))
        assert re.search("Unknown integration 'nope'", import_refused("--integration", "nope", ZOO))

    def test_exit_status_1(self, zoo, tmp_path):
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "manage.py", "import_openapi", "--integration", "zoo",
                               str(tmp_path / "absent.json")], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent, timeout=120)
        assert done.returncode == 1
        assert "Cannot read" in json.loads(done.stdout.strip().splitlines()[-1])["error_details"][0]


def test_source_may_be_a_url(zoo, local_server):
    from tests.network import reply

    local_server.app = lambda received: reply(200, [("Content-Type", "application/json")], ZOO.read_bytes())
    summary = import_openapi("--integration", "zoo", f"{local_server.url}/openapi.json")
    assert summary["created"] == 7
    assert local_server.requests[0].path == "/openapi.json"


SPLIT_MAIN = {"openapi": "3.1.0", "info": {"title": "Split", "version": "1"}, "paths": {"/things": {"post": {
    "operationId": "createThing", "requestBody": {"content": {"application/json": {"schema": {"$ref": "REF"}}}},
    "responses": {"200": {"description": "ok"}}}}}}
SPLIT_SCHEMAS = {"Thing": {"type": "object", "properties": {"label": {"type": "string"}}}}


def split_document(ref: str) -> str:
    return json.dumps(SPLIT_MAIN).replace("REF", ref)


def test_refs_to_a_sibling_file_are_resolved(zoo, tmp_path):
    (tmp_path / "schemas.json").write_text(json.dumps(SPLIT_SCHEMAS))
    (tmp_path / "main.json").write_text(split_document("schemas.json#/Thing"))
    import_openapi("--integration", "zoo", tmp_path / "main.json")
    assert typed(zoo)["zoo-create-thing"].parameters["properties"] == {"label": {"type": "string"}}


def test_remote_refs_are_fetched_through_the_outbound_client(zoo, local_server):
    from tests.network import reply

    def app(received):
        body = split_document("schemas.json#/Thing") if received.path == "/api/main.json" else json.dumps(SPLIT_SCHEMAS)
        return reply(200, [("Content-Type", "application/json")], body.encode())

    local_server.app = app
    import_openapi("--integration", "zoo", f"{local_server.url}/api/main.json")
    assert typed(zoo)["zoo-create-thing"].parameters["properties"] == {"label": {"type": "string"}}
    assert "/api/schemas.json" in [r.path for r in local_server.requests]


def test_a_fetched_document_cannot_read_local_files(zoo, local_server, tmp_path):
    from tests.network import reply

    (tmp_path / "schemas.json").write_text(json.dumps(SPLIT_SCHEMAS))
    ref = (tmp_path / "schemas.json").as_uri() + "#/Thing"
    local_server.app = lambda received: reply(200, [("Content-Type", "application/json")], split_document(ref).encode())
    problem = import_refused("--integration", "zoo", f"{local_server.url}/main.json")
    assert problem.endswith("a fetched document cannot refer to local files.")
    assert typed(zoo) == {}

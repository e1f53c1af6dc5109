"""The Function admin: browse, search, enable/disable, schema view, and the OpenAPI import on an integration's page."""

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from connections.models import Function
from tests.factories import make_integration

ZOO = Path(__file__).resolve().parent / "fixtures" / "openapi" / "zoo-3.1.json"


@pytest.fixture
def zoo(db):
    integration = make_integration(slug="zoo", base_url="https://zoo.test")
    call_command("import_openapi", "--integration", "zoo", str(ZOO), stdout=open("/dev/null", "w"))
    return integration


def changelist(**params):
    return reverse("admin:connections_function_changelist"), params


def test_changelist_shows_type_operation_and_search_finds_by_description(admin_client, zoo):
    url, _ = changelist()
    page = admin_client.get(url, {"q": "animals"}).content.decode()
    assert "zoo-list-animals" in page and "GET /animals" in page
    assert "zoo-list-keepers" not in page
    assert "zoo-tag-animal" not in admin_client.get(url, {"type__exact": "query"}).content.decode()


def test_change_page_shows_the_schemas(admin_client, zoo):
    function = Function.objects.get(name="zoo-create-animal")
    page = admin_client.get(reverse("admin:connections_function_change", args=[function.pk])).content.decode()
    assert "Parameters (JSON schema)" in page and "&quot;exclusiveMinimum&quot;: 0" in page
    assert "Output (JSON schema)" in page and "POST /animals" in page


def test_disable_and_enable_actions(admin_client, zoo):
    url, _ = changelist()
    ids = list(Function.objects.filter(name__startswith="zoo-list").values_list("pk", flat=True))
    admin_client.post(url, {"action": "disable", "_selected_action": ids})
    assert set(Function.objects.filter(enabled=False).values_list("name", flat=True)) == {
        "zoo-list-animals", "zoo-list-keepers", "zoo-list-keepers-2"}
    admin_client.post(url, {"action": "enable", "_selected_action": ids})
    assert not Function.objects.filter(enabled=False).exists()


def test_integration_page_links_to_the_import(admin_client, zoo):
    page = admin_client.get(reverse("admin:connections_integration_change", args=[zoo.pk])).content.decode()
    assert reverse("admin:functions_function_import_openapi") + "?integration=zoo" in page


def test_import_from_an_uploaded_document(admin_client, db):
    zoo = make_integration(slug="zoo", base_url="https://zoo.test")
    url = reverse("admin:functions_function_import_openapi")
    assert admin_client.get(url, {"integration": "zoo"}).status_code == 200
    answer = admin_client.post(url, {"integration": "zoo", "tags": "staff", "document": SimpleUploadedFile(
        "zoo.json", ZOO.read_bytes(), content_type="application/json")}, follow=True)
    page = answer.content.decode()
    assert "Zoo: 2 created, 0 updated, 0 deleted. Skipped: currentKeeper: cookie parameter" in page
    assert set(zoo.functions.exclude(type="passthrough").values_list("name", flat=True)) == {
        "zoo-list-keepers", "zoo-list-keepers-2"}


def test_import_of_an_invalid_document_says_where_and_writes_nothing(admin_client, db):
    zoo = make_integration(slug="zoo", base_url="https://zoo.test")
    answer = admin_client.post(reverse("admin:functions_function_import_openapi"), {
        "integration": "zoo", "document": SimpleUploadedFile("bad.json", b'{"openapi": "3.1.0", "paths": {}}')})
    assert answer.status_code == 200
    # The validator's wording quotes the property with ' or " (jsonschema, or jsonschema_rs where installed).
    assert re.search(r"(&#x27;|&quot;)info(&#x27;|&quot;) is a required property", answer.content.decode())
    assert zoo.functions.count() == 1

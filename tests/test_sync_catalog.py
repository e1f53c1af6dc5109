"""`sync_models` in catalog files: validated by `load_catalog` with errors that name the entry; nothing written."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from connections.models import Integration
from syncing.spec import SyncModelSpec, sync_model_specs, validate_sync_models

ENTRY = {"slug": "acme", "name": "Acme", "base_url": "https://api.acme.test", "auth": {"scheme": "bearer"}}
CONTACTS = {"name": "contacts", "path": "/contacts", "records_field": "results", "id_field": "id",
            "updated_at_field": "updated_at", "modified_since": {"param": "updated_after", "format": "iso8601"},
            "pagination": {"style": "cursor", "param": "cursor", "next_field": "next_cursor",
                           "page_size_param": "limit", "page_size": 100},
            "frequency_seconds": 3600}


def load(tmp_path, *entries):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"integrations": list(entries)}))
    out, code = StringIO(), 0
    try:
        call_command("load_catalog", str(path), stdout=out)
    except SystemExit as exit:
        code = exit.code
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.django_db
def test_a_catalog_with_sync_models_loads(tmp_path):
    page = {"name": "deals", "path": "/deals", "modified_since": {"param": "since", "format": "unix"},
            "pagination": {"style": "page", "param": "page", "start": 0}, "frequency_seconds": None}
    code, result = load(tmp_path, {**ENTRY, "sync_models": [CONTACTS, page]})
    assert (code, result) == (0, {"created": 1, "updated": 0})
    specs = sync_model_specs(Integration.objects.get(slug="acme"))
    assert [spec.name for spec in specs] == ["contacts", "deals"]
    assert specs[1].frequency_seconds is None and specs[1].pagination.start == 0


@pytest.mark.django_db
@pytest.mark.parametrize("model, detail", [
    ({"path": "/x"}, "sync_models[0] name: Required"),
    ({"name": "contacts"}, "sync_models[0] (contacts) path: Required"),
    ({**CONTACTS, "pagination": {"style": "scroll"}}, "(contacts) pagination.style: Must be one of"),
    ({**CONTACTS, "pagination": {"style": "cursor", "param": "cursor"}}, "(contacts) pagination.next_field: Required"),
    ({**CONTACTS, "pagination": {"style": "page"}}, "(contacts) pagination.param: Required"),
    ({**CONTACTS, "pagination": {"style": "offset", "param": "o", "page_size": 0}}, "(contacts) pagination.page_size"),
    ({**CONTACTS, "modified_since": {"param": "since", "format": "rfc2822"}}, "(contacts) modified_since.format"),
    ({**CONTACTS, "modified_since": "updated_after"}, "(contacts) modified_since: Must be"),
    ({**CONTACTS, "frequency_seconds": 0}, "(contacts) frequency_seconds: Must be a positive integer"),
    ({**CONTACTS, "lookback_seconds": -5}, "(contacts) lookback_seconds"),
    ({**CONTACTS, "id_field": ""}, "(contacts) id_field"),
    ({**CONTACTS, "colour": "red"}, "(contacts) colour: Unknown field."),
    ("contacts", "sync_models[0] Must be an object."),
])
def test_a_bad_sync_model_fails_naming_the_entry_and_writes_nothing(tmp_path, model, detail):
    good = {**ENTRY, "slug": "good", "name": "Good"}
    code, result = load(tmp_path, good, {**ENTRY, "sync_models": [model]})
    assert code == 1 and result["error"] == "Invalid catalog."
    assert any(line.startswith("integrations[1] (acme) ") and detail in line for line in result["error_details"]), result
    assert not Integration.objects.exists()


@pytest.mark.django_db
def test_duplicate_model_names_fail(tmp_path):
    code, result = load(tmp_path, {**ENTRY, "sync_models": [CONTACTS, CONTACTS]})
    assert code == 1
    assert "integrations[0] (acme) sync_models[1] (contacts) name: Duplicate model name." in result["error_details"]


@pytest.mark.django_db
def test_sync_models_that_are_not_a_list_fail(tmp_path):
    code, result = load(tmp_path, {**ENTRY, "sync_models": {"contacts": {}}})
    assert code == 1 and "integrations[0] (acme) sync_models: Must be a list." in result["error_details"]


def test_defaults_of_a_minimal_model():
    assert validate_sync_models([{"name": "contacts", "path": "/contacts"}]) == []
    spec = SyncModelSpec.from_entry({"name": "contacts", "path": "/contacts"})
    assert (spec.records_field, spec.id_field, spec.updated_at_field, spec.modified_since) == ("", "id", "updated_at", None)
    assert (spec.pagination.style, spec.frequency_seconds, spec.lookback_seconds) == ("none", 86400, 0)

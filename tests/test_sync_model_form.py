"""Sync models edited as rows on the Integration admin page: no JSON by hand, `load_catalog`'s validator and messages
on the row and column they are about, nothing saved when one is wrong."""

import pytest
from django.contrib.admin.models import LogEntry
from django.utils.html import escape

from connections.catalog import validate_entry
from connections.models import Integration
from syncing.spec import sync_model_spec
from tests.factories import make_integration
from tests.test_admin import admin_url, integration_form, sync_model_rows

CONTACTS = {"name": "contacts", "path": "/contacts", "records_field": "results", "updated_at_field": "modified",
            "modified_since": {"param": "updated_after", "format": "unix"},
            "pagination": {"style": "cursor", "param": "cursor", "next_field": "meta.next", "page_size_param": "limit",
                           "page_size": 100},
            "frequency_seconds": 3600, "lookback_seconds": 30}
CONTACTS_ROW = {"name": "contacts", "path": "/contacts", "records_field": "results", "updated_at_field": "modified",
                "modified_since_param": "updated_after", "modified_since_format": "unix", "pagination_style": "cursor",
                "pagination_param": "cursor", "pagination_next_field": "meta.next", "pagination_page_size_param": "limit",
                "pagination_page_size": "100", "frequency_seconds": "3600", "lookback_seconds": "30"}
DEALS = {"name": "deals", "path": "/deals", "frequency_seconds": None}
DEALS_ROW = {"name": "deals", "path": "/deals", "frequency_seconds": ""}


def rows_of(response):
    return response.context["adminform"].form.formsets["sync_models"]


def page_rows(response) -> dict:
    """What the browser posts back for the rows the page shows, untouched."""
    formset = rows_of(response)
    rows = [{field.name: field.value() or "" for field in form.visible_fields() if field.name != "DELETE"}
            for form in formset.forms]
    return sync_model_rows(*rows, initial=formset.initial_form_count())


@pytest.fixture
def globex(db):
    return make_integration(slug="globex", base_url="https://api.globex.test", sync_models=[CONTACTS, DEALS])


@pytest.mark.django_db
class TestSyncModelRows:
    def test_an_integrations_models_are_shown_in_rows_with_empty_rows_to_add_more(self, admin_client, globex):
        response = admin_client.get(admin_url(Integration, "change", globex.pk))
        html = response.content.decode()
        assert 'name="sync_models"' not in html  # no JSON box
        assert 'name="sync_models-0-pagination_next_field" value="meta.next"' in html
        assert '<option value="cursor" selected>' in html
        assert 'name="sync_models-1-frequency_seconds" size="6"' in html  # manual only: blank
        formset = rows_of(response)
        assert (formset.total_form_count(), formset.initial_form_count()) == (4, 2)
        assert [form["name"].value() for form in formset.forms] == ["contacts", "deals", None, None]
        assert formset.forms[1]["frequency_seconds"].value() == ""
        assert formset.forms[1]["id_field"].value() == "id"  # the spec's default shown

    def test_saving_the_rows_unchanged_keeps_the_models(self, admin_client, globex):
        url = admin_url(Integration, "change", globex.pk)
        response = admin_client.post(url, integration_form(**page_rows(admin_client.get(url))))
        assert response.status_code == 302
        globex.refresh_from_db()
        assert globex.sync_models == [CONTACTS, DEALS]
        assert "sync_models" not in LogEntry.objects.get(object_id=str(globex.pk)).get_change_message()

    def test_a_model_is_added_by_filling_an_empty_row(self, admin_client):
        response = admin_client.post(admin_url(Integration, "add"), integration_form(**sync_model_rows(CONTACTS_ROW, {})))
        assert response.status_code == 302
        integration = Integration.objects.get(slug="globex")
        assert integration.sync_models == [CONTACTS]
        spec = sync_model_spec(integration, "contacts")
        assert (spec.pagination.next_field, spec.modified_since.format, spec.lookback_seconds) == ("meta.next", "unix", 30)

    def test_a_model_is_edited_in_its_row(self, admin_client, globex):
        rows = sync_model_rows(CONTACTS_ROW, {**DEALS_ROW, "frequency_seconds": "600", "pagination_style": "page",
                                             "pagination_param": "p", "pagination_start": "0"}, initial=2)
        response = admin_client.post(admin_url(Integration, "change", globex.pk), integration_form(**rows))
        assert response.status_code == 302
        globex.refresh_from_db()
        assert globex.sync_models == [CONTACTS, {"name": "deals", "path": "/deals", "frequency_seconds": 600,
                                                 "pagination": {"style": "page", "param": "p", "start": 0}}]
        assert "sync_models" in LogEntry.objects.get(object_id=str(globex.pk)).get_change_message()

    def test_a_model_is_deleted_by_ticking_delete(self, admin_client, globex):
        rows = sync_model_rows({**CONTACTS_ROW, "DELETE": "on"}, DEALS_ROW, {}, initial=2)
        response = admin_client.post(admin_url(Integration, "change", globex.pk), integration_form(**rows))
        assert response.status_code == 302
        globex.refresh_from_db()
        assert globex.sync_models == [DEALS]

    @pytest.mark.parametrize("row, entry, column", [
        ({"name": "tickets"}, {"name": "tickets", "frequency_seconds": 86400}, "path"),
        ({**DEALS_ROW, "frequency_seconds": "-5"}, {**DEALS, "frequency_seconds": -5}, "frequency_seconds"),
        ({**DEALS_ROW, "frequency_seconds": "hourly"}, {**DEALS, "frequency_seconds": "hourly"}, "frequency_seconds"),
        ({**DEALS_ROW, "pagination_style": "cursor", "pagination_param": "c"},
         {**DEALS, "pagination": {"style": "cursor", "param": "c"}}, "pagination_next_field"),
        ({**DEALS_ROW, "pagination_page_size": "0"}, {**DEALS, "pagination": {"style": "none", "page_size": 0}},
         "pagination_page_size"),
        ({**DEALS_ROW, "name": "contacts"}, {**DEALS, "name": "contacts"}, "name"),  # a second "contacts"
        ({**DEALS_ROW, "modified_since_param": "since", "modified_since_format": "rfc2822"},
         {**DEALS, "modified_since": {"param": "since", "format": "rfc2822"}}, "modified_since_format"),
    ])
    def test_a_bad_row_is_refused_with_load_catalogs_message_on_its_column_and_nothing_changes(
            self, admin_client, globex, row, entry, column):
        before = globex.sync_models
        rows = sync_model_rows(CONTACTS_ROW, row, initial=2)
        response = admin_client.post(admin_url(Integration, "change", globex.pk), integration_form(**rows, name="Renamed"))
        assert response.status_code == 200
        expected = validate_entry({"slug": "globex", "name": "Globex", "base_url": "https://api.globex.test",
                                   "auth": {"scheme": "bearer"}, "sync_models": [CONTACTS, entry]})
        assert expected and all(e.startswith("sync_models[1]") for e in expected)
        assert rows_of(response).forms[1].errors[column] == expected
        assert all(escape(e) in response.content.decode() for e in expected)
        globex.refresh_from_db()
        assert (globex.sync_models, globex.name) == (before, "Globex")

    def test_a_new_integration_with_a_bad_row_is_not_added(self, admin_client):
        response = admin_client.post(admin_url(Integration, "add"), integration_form(**sync_model_rows({"path": "/x"})))
        assert response.status_code == 200
        assert "sync_models[0] name: Required" in response.content.decode()
        assert not Integration.objects.filter(slug="globex").exists()

    def test_posting_without_the_rows_changes_nothing(self, admin_client, globex):
        form = {key: value for key, value in integration_form(name="Renamed").items() if not key.startswith("sync_models")}
        response = admin_client.post(admin_url(Integration, "change", globex.pk), form)
        assert response.status_code == 200
        globex.refresh_from_db()
        assert (globex.sync_models, globex.name) == ([CONTACTS, DEALS], "Globex")

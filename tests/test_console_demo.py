"""`make run`'s demo: it follows the port, syncs echo's contacts, and fills the call log with each outcome."""

import pytest
from django.test import Client

from connections.models import Integration
from integration_platform.metrics import outcome_of
from passthrough.models import FunctionCall
from syncing import services
from syncing.models import Record
from tests.test_commands import DEMO_CATALOG, run


@pytest.fixture
def demo(db):
    run("load_catalog", str(DEMO_CATALOG))
    return run("setup_demo", "--base-url", "http://127.0.0.1:8001")[1]


def test_the_echo_integration_follows_the_port(demo):
    assert Integration.objects.get(slug="echo").base_url == "http://127.0.0.1:8001/echo"


def test_the_call_log_has_a_call_of_each_outcome(demo):
    outcomes = {outcome_of(status) for status in FunctionCall.objects.values_list("response_status", flat=True)}
    assert outcomes == {"success", "client_error", "rate_limited", "upstream_error", "network_error"}


def test_running_it_again_replaces_the_demo_calls(demo):
    count = FunctionCall.objects.count()
    run("setup_demo", "--base-url", "http://127.0.0.1:8001")
    assert FunctionCall.objects.count() == count


def test_the_echo_contacts_model_syncs_its_records(demo, live_server):
    from connections.models import Connection

    Integration.objects.filter(slug="echo").update(base_url=f"{live_server.url}/echo")
    connection = Connection.objects.get(pk=demo["connection_id"])
    services.sync_now(connection, "contacts")
    assert sorted(Record.objects.filter(connection=connection).values_list("remote_id", flat=True)) == ["c-1", "c-2", "c-3"]
    response = Client().get(f"/api/v1/connections/{connection.pk}/records/contacts",
                            HTTP_AUTHORIZATION=f"Bearer {demo['key']}")
    assert [r["data"]["name"] for r in response.json()["results"]][:1] == ["Ada Lovelace"]

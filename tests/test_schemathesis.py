"""Never a 500 for bad input, and every answer documented: schemathesis fuzzes every operation of our OpenAPI schema
(`/api/schema/`: native, Merge and Unified surfaces) through the WSGI application, in process.

Bounded and repeatable for CI: a fixed seed, deterministic generation; per operation, the coverage phase (boundary and
type-confusion cases from the schema) and MAX_EXAMPLES fuzzed examples (about a minute per CI leg). Calls that go
upstream reach only the local httpbin (the integration's base URL); `network_guard` fails the run on any real DNS
lookup or any connect to a non-loopback address. Checks: no 5xx, and every status documented for its operation.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from integration_platform.wsgi import application
from tests.factories import make_connection

MAX_EXAMPLES = 15
CONFIG = schemathesis.Config.from_dict({
    "seed": 16,
    "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
})


@pytest.fixture
def fuzzed(alice, httpbin_integration, network_guard):
    """Alice's connection to the local httpbin: (connection, account token); fuzzed calls use her key and token."""
    return make_connection(alice.organization, httpbin_integration)


# Read from the app itself (the schema view needs no database).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=CONFIG)


@pytest.fixture
def in_test_transaction(db):
    """Calls go through the WSGI application in this thread, inside the test's transaction: the connection must
    outlive each request (Django's test client does the same)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def known_objects(connection) -> dict:
    """Path parameters that name Alice's objects, so fuzzed bodies and queries reach the code behind the lookup
    (random ids only ever find a 404)."""
    return {"connection_id": str(connection.pk), "id": str(connection.pk), "slug": connection.integration.slug,
            "name": f"{connection.integration.slug}-passthrough-request"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_an_undocumented_status(case, alice, fuzzed, in_test_transaction):
    connection, token = fuzzed
    known = known_objects(connection)
    case.path_parameters = {name: known.get(name, value) for name, value in (case.path_parameters or {}).items()}
    headers = {"Authorization": f"Bearer {alice.key}", "X-Account-Token": token}
    case.call_and_validate(headers=headers, checks=[not_a_server_error, status_code_conformance])

"""Never a 500 for bad input, and every answer documented: schemathesis fuzzes every operation of our OpenAPI schema
(`/api/schema/`: native, Merge, Unified and Integry surfaces) through the WSGI application, in process.

Bounded and repeatable for CI: a fixed seed, deterministic generation; per operation, the coverage phase (boundary and
type-confusion cases from the schema) and MAX_EXAMPLES fuzzed examples (about a minute per CI leg). Calls that go
upstream reach only the local httpbin (the integration's base URL); `network_guard` fails the run on any real DNS
lookup or any connect to a non-loopback address. Checks: no 5xx, and every status documented for its operation.
"""

import hashlib
import hmac

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


def known_objects(connection, path: str) -> dict:
    """Path parameters that name Alice's objects, so fuzzed bodies and queries reach the code behind the lookup
    (random ids only ever find a 404)."""
    slug = connection.integration.slug
    return {"connection_id": str(connection.pk), "id": str(connection.pk), "slug": slug,
            "name": slug if path.startswith("/integry/apps/") else f"{slug}-passthrough-request"}


def credentials(alice, connection, token) -> dict:
    """Alice's API key and account token, and the Integry headers for her end user."""
    user_id = connection.end_user_id
    return {"Authorization": f"Bearer {alice.key}", "X-Account-Token": token, "App-Key": alice.api_key.key_id,
            "User-ID": user_id, "Hash": hmac.new(alice.key.encode(), user_id.encode(), hashlib.sha256).hexdigest()}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_an_undocumented_status(case, alice, fuzzed, in_test_transaction):
    connection, token = fuzzed
    known = known_objects(connection, case.path)
    case.path_parameters = {name: known.get(name, value) for name, value in (case.path_parameters or {}).items()}
    case.call_and_validate(headers=credentials(alice, connection, token),
                           checks=[not_a_server_error, status_code_conformance])

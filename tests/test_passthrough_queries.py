"""What one native passthrough costs the database (issue #4's hot path): which statements it runs, not how long."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from connections import client
from connections.models import LAST_USED_RESOLUTION, ApiKey, Connection
from passthrough import services
from passthrough.models import FunctionCall
from tests.factories import make_connection
from tests.network import local_integration, passthrough

# The rate limiter's own statements (windows, pauses, the sliding logs in local mode) are tested in test_ratelimit.py.
LIMITER_SQL = re.compile(r'^SELECT "connections_integration"\."rate_limits" AS|"connections_ratelimit')
# The FROM of a subquery names its table with an alias (U0): skipped.
TABLE = re.compile(r'^(SELECT\b.*?\bFROM|INSERT INTO|UPDATE|DELETE FROM) "(\w+)"(?! U\d)', re.S)
A_MINUTE_AGO = LAST_USED_RESOLUTION + timedelta(seconds=1)


def statements(captured) -> list[tuple[str, str]]:
    """(verb, table) of each statement that is not the rate limiter's."""
    found = []
    for query in captured:
        sql = query["sql"]
        if not LIMITER_SQL.search(sql):
            verb_and_table = TABLE.match(sql)
            found.append((sql.split()[0].upper(), verb_and_table.group(2) if verb_and_table else sql[:60]))
    return found


@pytest.fixture
def local_connection(alice, local_server):
    """Returns (connection, account token) of an integration whose upstream is the local server."""
    return make_connection(alice.organization, local_integration(local_server.url))


def test_a_warm_passthrough_reads_key_and_connection_once_and_writes_only_its_log_row(alice, local_connection,
                                                                                         django_assert_max_num_queries):
    _, token = local_connection
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200  # records first use of key and connection
    with django_assert_max_num_queries(5) as captured:
        assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert statements(captured) == [("SELECT", "connections_apikey"), ("SELECT", "connections_connection"),
                                    ("INSERT", "passthrough_functioncall")]


def test_the_connection_is_read_with_its_integration_in_one_statement(alice, local_connection, django_assert_max_num_queries):
    _, token = local_connection
    passthrough(alice, token, method="GET", path="/ping")
    with django_assert_max_num_queries(5) as captured:
        passthrough(alice, token, method="GET", path="/ping")
    [lookup] = [q["sql"] for q in captured if q["sql"].startswith("SELECT") and 'FROM "connections_connection"' in q["sql"]]
    # Its integration's passthrough function (the first by name) comes in a subquery of the same statement.
    outer = re.sub(r'\(SELECT U0\."id" AS "pk" FROM "connections_function" U0 .*? LIMIT 1\)', "", lookup)
    assert outer != lookup
    assert '"connections_integration"' in outer and "ORDER BY" not in outer


def test_first_passthrough_records_when_the_connection_was_used(alice, local_connection):
    connection, token = local_connection
    passthrough(alice, token, method="GET", path="/ping")
    connection.refresh_from_db()
    assert connection.last_used_at is not None


def test_connection_use_is_written_at_most_once_a_minute(alice_connection, django_assert_num_queries):
    connection, _ = alice_connection
    connection.touch()
    first = Connection.objects.get(pk=connection.pk).last_used_at
    with django_assert_num_queries(0):
        connection.touch()
    assert Connection.objects.get(pk=connection.pk).last_used_at == first


def test_connection_use_is_written_again_once_a_minute_has_passed(alice_connection):
    connection, _ = alice_connection
    long_ago = timezone.now() - A_MINUTE_AGO
    Connection.objects.filter(pk=connection.pk).update(last_used_at=long_ago)
    connection.refresh_from_db()
    connection.touch()
    assert Connection.objects.get(pk=connection.pk).last_used_at > long_ago


def test_api_key_use_is_written_again_once_a_minute_has_passed(alice, local_connection):
    _, token = local_connection
    long_ago = timezone.now() - A_MINUTE_AGO
    ApiKey.objects.filter(pk=alice.api_key.pk).update(last_used_at=long_ago)
    passthrough(alice, token, method="GET", path="/ping")
    assert ApiKey.objects.get(pk=alice.api_key.pk).last_used_at > long_ago


def test_a_revoked_key_is_refused_on_the_very_next_call(alice, local_connection):
    _, token = local_connection
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now())
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 401


def test_log_row_names_the_integrations_passthrough_function(alice_connection):
    connection, _ = alice_connection
    exchange = client.Exchange("GET", "https://api.acme.test/v1/x", {}, None, timezone.now())
    call = services.function_call_record(exchange, connection=connection, dialect=FunctionCall.DIALECT_NATIVE,
                                         mode=FunctionCall.MODE_SYNC)
    assert call.function.name == "acme-passthrough-request"
    assert FunctionCall.objects.get(pk=call.pk).function_id == call.function_id

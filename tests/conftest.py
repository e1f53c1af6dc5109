import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import make_api_key, make_connection, make_integration


@pytest.fixture(autouse=True)
def _clear_cache(db):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _hot_path_as_written(settings):
    """Tests read the call log right after a call: rows are written before the answer (tests/test_call_log_writer.py
    covers the batched writer). Tests revoke keys and pause connections with raw UPDATEs, which the in-process cache
    of keys and connections does not see (tests/test_hot_cache.py covers it)."""
    settings.FUNCTION_CALL_LOG_MODE = "sync"
    settings.HOT_PATH_CACHE = False


class Tenant:
    """An organization with an API key and an authenticated API client."""

    def __init__(self, name):
        self.api_key, self.key = make_api_key(name)
        self.organization = self.api_key.organization
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")


@pytest.fixture
def admin_client(db, client):
    """Django's test client, logged in as a superuser (no password: hashing one is slow)."""
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.test", password=None))
    return client


@pytest.fixture
def alice(db):
    return Tenant("alice")


@pytest.fixture
def bob(db):
    return Tenant("bob")


@pytest.fixture
def integration(db):
    return make_integration()


@pytest.fixture
def alice_connection(alice, integration):
    """Returns (connection, account token)."""
    return make_connection(alice.organization, integration)


@pytest.fixture(scope="session")
def httpbin_url():
    """httpbin served by gunicorn on 127.0.0.1: the real local upstream of the integration tests."""
    from tests.servers import gunicorn

    with gunicorn("httpbin:app") as url:
        yield url


@pytest.fixture
def httpbin_integration(db, httpbin_url):
    """An integration whose base URL is the local httpbin (trusted: registered by the operator)."""
    return make_integration(slug="httpbin", base_url=httpbin_url, allowed_override_hosts=["127.0.0.1", "localhost"])


@pytest.fixture
def broker():
    """The configured Dramatiq broker (StubBroker on the SQLite leg, Redis on the PostgreSQL leg), emptied."""
    import queue

    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    broker = dramatiq.get_broker()
    broker.flush_all()
    if isinstance(broker, StubBroker):
        # A message a stopped worker had taken (e.g. a delayed retry) is never acked; its queue would keep an
        # unfinished task forever and every later join() would wait for it. Each test gets fresh queues.
        for name in list(broker.queues):
            broker.queues[name] = queue.Queue()
    yield broker
    broker.flush_all()


@pytest.fixture
def worker(broker, transactional_db):
    """A real Dramatiq worker in this process; jobs run for real. Use `broker.join(queue)` then `worker.join()`."""
    from dramatiq import Worker

    worker = Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def merge_sdk(live_server):
    """Merge's SDK, unmodified: `merge_sdk(api_key, account_token=None)` builds a client as the SDK's own default would (redirects followed).

    Its HTTP connections are closed after the test: a kept-alive connection would outlive the test server's
    shared database connection and fail in the server thread at exit.
    """
    import httpx

    http_clients = []

    def build(key, account_token=None):
        from merge import Merge

        http_clients.append(httpx.Client(timeout=60, follow_redirects=True))
        return Merge(base_url=f"{live_server.url}/merge/api", api_key=key, account_token=account_token,
                     httpx_client=http_clients[-1])

    yield build
    for http_client in http_clients:
        http_client.close()


@pytest.fixture
def network_guard(monkeypatch):
    """Tests that name non-loopback hosts: any real DNS lookup or non-loopback connect fails the test."""
    from tests.network import install_network_guard

    return install_network_guard(monkeypatch)


@pytest.fixture
def local_server():
    """An in-process server on 127.0.0.1 that records exactly what arrived on the wire."""
    from tests.network import LocalServer

    with LocalServer() as server:
        yield server


@pytest.fixture(scope="session")
def sync_upstream_server(tmp_path_factory):
    """The paginated upstream of the syncing tests (tests/sync_upstream.py), served by gunicorn on 127.0.0.1."""
    from tests.sync_upstream import serve

    with serve(tmp_path_factory.mktemp("sync-upstream")) as state:
        yield state


@pytest.fixture
def sync_upstream(sync_upstream_server):
    """The paginated upstream, emptied: `.url`, `.reset(records)`, `.update(id, ...)`, `.fault(...)`, `.log()`."""
    sync_upstream_server.reset()
    return sync_upstream_server


@pytest.fixture
def synced_connection(alice, sync_upstream, monkeypatch):
    """Alice's connection to the paginated upstream with two manual-only models, `contacts` (cursor) and `leads`
    (page); `contacts` synced once (4 records). Returns (connection, account token)."""
    from syncing import engine, services
    from tests.sync_upstream import make_records, sync_model

    monkeypatch.setattr(engine, "sleep", lambda seconds: None)
    sync_upstream.reset(make_records(4))
    integration = make_integration(slug="upstream", base_url=sync_upstream.url,
                                   sync_models=[sync_model("cursor"), sync_model("page", name="leads")])
    connection, token = make_connection(alice.organization, integration)
    services.sync_now(connection, "contacts")
    return connection, token


@pytest.fixture(scope="session")
def oauth_provider(tmp_path_factory, live_server):
    """A real OAuth2 authorization server (django-oauth-toolkit) on 127.0.0.1, its client registered for our callback
    under the test client (`testserver`) and the live server. Its user: tests.oauth_provider.USERNAME/PASSWORD."""
    from tests.oauth_provider import serve

    callbacks = ["http://testserver/connect/oauth/callback", f"{live_server.url}/connect/oauth/callback"]
    with serve(tmp_path_factory.mktemp("oauth-provider"), callbacks) as provider:
        yield provider

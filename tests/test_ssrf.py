"""The SSRF address guard (connections/addresses.py, plus the connect-time guard and redirect handling of client.py).

Each refused form is tried on both paths by which a user-chosen host reaches the outbound client: an upstream redirect
from the trusted base URL (refused by the allowlist, or for the base URL's own host by the guard), and
`base_url_override` with the host allowlisted (so the guard, not the allowlist, is what refuses). No packet leaves this machine: the
autouse `network_guard` fails a test on any real DNS lookup or any connect to a non-loopback address, and loopback
victims count the TCP connections they receive.
"""

import pytest

from connections import addresses, client
from connections.addresses import AddressRefused, check_address, ip_literal
from integration_platform.errors import InvalidInput
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.network import TOKEN, LocalServer, local_integration, passthrough, reply

pytestmark = pytest.mark.usefixtures("network_guard")

# Host spellings (as written in a URL) that must never be reached by a user-chosen URL when private networks are not
# allowed. `victim` ports are substituted where the form is a loopback address, so a guard bug would hit a real server.
REFUSED_FORMS = [
    "127.0.0.1", "127.0.0.2", "localhost", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "[::1]",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[0:0:0:0:0:0:0:1]", "0.0.0.0", "0", "[::]",
    "169.254.169.254", "[::ffff:169.254.169.254]", "[fe80::1]", "224.0.0.1", "[ff02::1]", "255.255.255.255",
    "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "[fc00::1]", "[fd12:3456::1]",
    "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]", "[fec0::1]",
]
NEVER_REACHABLE = ["169.254.169.254", "0.0.0.0", "::", "fe80::1", "224.0.0.1", "255.255.255.255", "ff02::1",
                   "::ffff:169.254.169.254"]
NON_CANONICAL = ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "0"]
# DNS names (fake-resolved) that an operator allowlisted but that resolve to addresses the guard refuses.
ROGUE_NAMES = {
    "loopback.example.test": ["127.0.0.1"], "v6loop.example.test": ["::1"], "mapped.example.test": ["::ffff:127.0.0.1"],
    "compat.example.test": ["::127.0.0.1"], "zero.example.test": ["0.0.0.0"], "metadata.example.test": ["169.254.169.254"],
    "linklocal6.example.test": ["fe80::1"], "multicast.example.test": ["224.0.0.1"], "private.example.test": ["10.0.0.1"],
    "rfc1918.example.test": ["192.168.1.1"], "cgnat.example.test": ["100.64.0.1"], "ula.example.test": ["fc00::1"],
    "mixed.example.test": ["93.184.215.14", "127.0.0.1"],
}
PUBLIC = "93.184.215.14"


@pytest.fixture
def victim():
    """A loopback server that must receive nothing."""
    with LocalServer() as server:
        yield server


def refused_logged(response):
    """The call was executed (a redirect hop was refused): 502, one log row whose error says why."""
    assert response.status_code == 502, response.content
    call = FunctionCall.objects.get()
    return call


# --- Unit: the address rules --------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "10.0.0.1", "192.168.1.1",
                                  "172.16.0.1", "100.64.0.1", "fc00::1", "64:ff9b::7f00:1", "2002:7f00:1::1", "fec0::1"])
def test_private_and_loopback_addresses_are_refused_by_default(host):
    with pytest.raises(AddressRefused):
        check_address(ip_literal(host), allow_private=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "fc00::1"])
def test_private_and_loopback_addresses_pass_when_private_is_allowed(host):
    check_address(ip_literal(host), allow_private=True)


@pytest.mark.parametrize("host", NEVER_REACHABLE + ["0.1.2.3", "169.254.0.1", "::ffff:0.0.0.0"])
def test_unspecified_link_local_multicast_and_broadcast_are_never_reachable(host):
    with pytest.raises(AddressRefused):
        check_address(ip_literal(host), allow_private=True)


@pytest.mark.parametrize("host", NON_CANONICAL)
def test_non_canonical_ipv4_spellings_are_refused_outright(host):
    with pytest.raises(AddressRefused):
        ip_literal(host)


@pytest.mark.parametrize("host", [PUBLIC, "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(host):
    check_address(ip_literal(host), allow_private=False)


def test_dns_names_are_not_ip_literals():
    assert ip_literal("api.acme.test") is None


# --- base_url_override: the host passes the allowlist, the guard refuses ---------------------------------------------

@pytest.fixture
def guarded(alice, victim):
    """(integration, account token): base URL is the trusted victim; any override must pass allowlist + guard."""
    integration = make_integration(slug="guarded", base_url="https://api.acme.test/v1",
                                   allowed_override_hosts=[*ROGUE_NAMES, "*.0.0.1", "*.168.1.1", *NON_CANONICAL,
                                                           "localhost", *NEVER_REACHABLE])
    _, token = make_connection(alice.organization, integration)
    return integration, token


def assert_refused_before_sending(response, victim, network_guard):
    assert response.status_code == 400, response.content
    assert FunctionCall.objects.count() == 0
    assert victim.connections == 0
    assert network_guard.connected_to(victim.port) == []


def test_loopback_ip_not_written_in_the_allowlist_is_refused(alice, victim, network_guard):
    integration = make_integration(slug="names-only", allowed_override_hosts=["localhost"])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://127.0.0.1:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


@pytest.mark.parametrize("host", ["127.0.0.1", "192.168.1.1"])
def test_private_ip_matched_only_by_a_wildcard_entry_is_refused(guarded, alice, victim, network_guard, host):
    _, token = guarded
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{host}:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


@pytest.mark.parametrize("host", NON_CANONICAL)
def test_non_canonical_spelling_is_refused_even_when_written_in_the_allowlist(guarded, alice, victim, network_guard, host):
    _, token = guarded
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{host}:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


@pytest.mark.parametrize("host", NEVER_REACHABLE)
def test_never_reachable_ip_is_refused_even_when_written_in_the_allowlist(guarded, alice, victim, network_guard, host):
    _, token = guarded
    literal = f"[{host}]" if ":" in host else host
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{literal}:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


@pytest.mark.parametrize("name", ["localhost", *ROGUE_NAMES])
def test_allowlisted_name_resolving_to_a_refused_address_is_refused_at_connect_time(guarded, alice, victim, network_guard, name):
    for rogue, ips in ROGUE_NAMES.items():
        network_guard.resolve(rogue, ips)
    _, token = guarded
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{name}:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)
    assert name in network_guard.lookups  # refused after resolving, i.e. at connect time


def test_allowlisted_name_resolving_to_loopback_never_reaches_httpbin(alice, httpbin_integration, httpbin_url, network_guard):
    # httpbin_integration allowlists "localhost"; a DNS name is never trusted for its loopback address.
    _, token = make_connection(alice.organization, httpbin_integration)
    port = int(httpbin_url.rsplit(":", 1)[1])
    response = passthrough(alice, token, method="GET", path="/anything", base_url_override=f"http://localhost:{port}")
    assert response.status_code == 400
    assert network_guard.connected_to(port) == []


def test_ip_literal_written_in_the_allowlist_is_allowed_although_loopback(alice, victim):
    integration = make_integration(slug="literal", allowed_override_hosts=["127.0.0.1"])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://127.0.0.1:{victim.port}/v2")
    assert response.status_code == 200
    assert (victim.requests[0].path, victim.requests[0].header("Authorization")) == ("/v2/x", f"Bearer {TOKEN}")


def test_allowed_literal_ip_is_reached_without_any_dns_lookup(alice, victim, network_guard):
    integration = make_integration(slug="literal", allowed_override_hosts=["127.0.0.1"])
    _, token = make_connection(alice.organization, integration)
    passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://127.0.0.1:{victim.port}")
    assert network_guard.lookups == []


@pytest.mark.parametrize("name", ["localhost", "loopback.example.test"])
def test_private_overrides_setting_lets_allowlisted_names_reach_loopback(alice, victim, network_guard, settings, name):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True
    network_guard.resolve("loopback.example.test", ["127.0.0.1"])
    integration = make_integration(slug="private-ok", allowed_override_hosts=[name])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{name}:{victim.port}")
    assert response.status_code == 200
    assert len(victim.requests) == 1


def test_private_overrides_setting_lets_private_addresses_be_connected_to(alice, network_guard, settings):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True
    network_guard.resolve("private.example.test", ["10.0.0.1"])
    network_guard.decoys.add("10.0.0.1")  # the connect is attempted and refused locally: nothing leaves
    integration = make_integration(slug="private-ok", allowed_override_hosts=["private.example.test"])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override="http://private.example.test:8080")
    assert response.status_code == 502
    assert network_guard.remote_connects() == [("10.0.0.1", 8080)]


@pytest.mark.parametrize("name, ips", [("metadata.example.test", ["169.254.169.254"]), ("linklocal6.example.test", ["fe80::1"]),
                                       ("zero.example.test", ["0.0.0.0"]), ("multicast.example.test", ["224.0.0.1"])])
def test_private_overrides_setting_never_allows_link_local_unspecified_or_multicast_names(alice, victim, network_guard, settings, name, ips):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True
    network_guard.resolve(name, ips)
    integration = make_integration(slug="private-ok", allowed_override_hosts=[name])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{name}:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "0.0.0.0"])
def test_private_overrides_setting_never_allows_a_listed_link_local_or_unspecified_literal(alice, victim, network_guard, settings, host):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True
    integration = make_integration(slug="private-ok", allowed_override_hosts=[host.strip("[]")])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://{host}:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


def test_domain_value_for_a_refused_literal_is_refused(guarded):
    integration, _ = guarded
    with pytest.raises(InvalidInput):
        client.build_target(integration, "x", base_url=client.domain_base_url(integration, "169.254.169.254"))


# --- DNS rebinding: resolve once, connect to the address that was checked ------------------------------------------

def test_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(alice, victim, network_guard, monkeypatch):
    # First answer public (passes), second answer loopback: a second lookup at connect time would reach the victim.
    network_guard.resolve("rebind.example.test", [PUBLIC], ["127.0.0.1"])
    network_guard.decoys.add(PUBLIC)
    checked = []
    real_check = addresses.check_address
    monkeypatch.setattr(addresses, "check_address", lambda ip, allow: (checked.append(str(ip)), real_check(ip, allow))[1])
    integration = make_integration(slug="rebind", allowed_override_hosts=["rebind.example.test"])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://rebind.example.test:{victim.port}")
    assert response.status_code == 502  # the (decoy) public address refused the connection
    assert network_guard.lookups == ["rebind.example.test"]
    assert network_guard.remote_connects() == [(PUBLIC, victim.port)]
    assert checked == [PUBLIC]
    assert victim.connections == 0


def test_every_resolved_address_must_pass(alice, victim, network_guard):
    network_guard.resolve("mixed.example.test", [PUBLIC, "127.0.0.1"])
    integration = make_integration(slug="rebind", allowed_override_hosts=["mixed.example.test"])
    _, token = make_connection(alice.organization, integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://mixed.example.test:{victim.port}")
    assert_refused_before_sending(response, victim, network_guard)


# --- Redirects from the trusted base URL ---------------------------------------------------------------------------

class Redirector(LocalServer):
    """The trusted upstream: answers `status` with `Location: location` (or `locations` in turn)."""

    def __init__(self, *locations, status=302):
        self.locations = list(locations)
        super().__init__(self.answer)
        self.status = status

    def answer(self, received):
        if not self.locations:
            return reply(200, [("Content-Type", "application/json")], b'{"final": true}')
        location = self.locations.pop(0)
        return reply(self.status, [("Location", location.replace("{port}", str(self.port)))], b"")


def redirecting(alice, *locations, status=302, allowed=()):
    """(redirector server, account token) for an integration whose trusted base URL is the redirector."""
    server = Redirector(*locations, status=status).__enter__()
    integration = local_integration(server.url, slug="redirecting", allowed_override_hosts=list(allowed))
    _, token = make_connection(alice.organization, integration)
    return server, token


@pytest.fixture
def stop_servers():
    started = []
    yield started
    for server in started:
        server.__exit__(None, None, None)


@pytest.mark.parametrize("form", REFUSED_FORMS)
def test_redirect_to_a_refused_address_is_not_followed(alice, victim, network_guard, stop_servers, form):
    server, token = redirecting(alice, f"http://{form}:{victim.port}/latest/meta-data/")
    stop_servers.append(server)
    call = refused_logged(passthrough(alice, token, method="GET", path="/start"))
    assert "refused" in call.error
    assert victim.connections == 0
    assert network_guard.remote_connects() == [] and network_guard.connected_to(victim.port) == []


def test_redirect_to_the_metadata_address_is_a_logged_upstream_error(alice, network_guard, stop_servers):
    server, token = redirecting(alice, "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    stop_servers.append(server)
    call = refused_logged(passthrough(alice, token, method="GET", path="/start"))
    assert (call.response_status, "169.254.169.254" in call.error) == (None, True)
    assert network_guard.remote_connects() == []


def test_redirect_to_another_port_of_the_trusted_loopback_host_is_refused(alice, victim, stop_servers):
    server, token = redirecting(alice, f"http://127.0.0.1:{victim.port}/admin")
    stop_servers.append(server)
    call = refused_logged(passthrough(alice, token, method="GET", path="/start"))
    assert "refused" in call.error
    assert victim.connections == 0


def test_redirect_to_a_refused_name_is_not_followed(alice, victim, network_guard, stop_servers):
    network_guard.resolve("loopback.example.test", ["127.0.0.1"])
    server, token = redirecting(alice, f"http://loopback.example.test:{victim.port}/")
    stop_servers.append(server)
    refused_logged(passthrough(alice, token, method="GET", path="/start"))
    assert victim.connections == 0


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "http://user:pw@127.0.0.1/",
                                      "http://[::1"])
def test_redirect_to_an_invalid_location_is_a_logged_upstream_error(alice, stop_servers, location):
    server, token = redirecting(alice, location)
    stop_servers.append(server)
    refused_logged(passthrough(alice, token, method="GET", path="/start"))


def test_redirect_within_the_same_origin_is_followed_to_the_final_answer(alice, stop_servers):
    server, token = redirecting(alice, "/step-2", "http://127.0.0.1:{port}/step-3")
    stop_servers.append(server)
    response = passthrough(alice, token, method="GET", path="/start")
    assert (response.status_code, response.json()["status"], response.json()["response"]) == (200, 200, {"final": True})
    assert [r.path for r in server.requests] == ["/start", "/step-2", "/step-3"]


def test_redirect_within_the_same_host_keeps_the_credentials(alice, stop_servers):
    server, token = redirecting(alice, "/step-2")
    stop_servers.append(server)
    passthrough(alice, token, method="GET", path="/start")
    assert [r.header("Authorization") for r in server.requests] == [f"Bearer {TOKEN}"] * 2


def test_httpbin_relative_redirects_are_followed(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    body = passthrough(alice, token, method="GET", path="/redirect/3").json()
    assert (body["status"], body["response"]["url"].endswith("/get")) == (200, True)


def test_redirect_loop_is_a_logged_upstream_error(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    response = passthrough(alice, token, method="GET", path="/redirect/20")
    assert response.status_code == 502
    assert "redirected more than" in FunctionCall.objects.get().error


def test_credentials_are_not_forwarded_to_a_redirect_hop_on_another_host(alice, victim, network_guard, settings, stop_servers):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True  # so the hop to another loopback name is allowed at all
    server, token = redirecting(alice, f"http://localhost:{victim.port}/elsewhere", allowed=["localhost"])
    stop_servers.append(server)
    response = passthrough(alice, token, method="GET", path="/start", headers={"X-Kept": "1"})
    assert response.status_code == 200
    hop = victim.requests[0]
    assert (hop.path, hop.header("Authorization"), hop.header("X-Kept")) == ("/elsewhere", None, "1")


def test_api_key_header_is_not_forwarded_to_a_redirect_hop_on_another_host(alice, victim, settings, stop_servers):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True
    server = Redirector(f"http://localhost:{victim.port}/elsewhere").__enter__()
    stop_servers.append(server)
    integration = local_integration(server.url, slug="keyed", auth={"scheme": "api_key", "in": "header", "name": "X-Api-Key"},
                                    allowed_override_hosts=["localhost"])
    _, token = make_connection(alice.organization, integration, credentials={"api_key": "key-SECRET-987654"})
    passthrough(alice, token, method="GET", path="/start")
    assert (server.requests[0].header("X-Api-Key"), victim.requests[0].header("X-Api-Key")) == ("key-SECRET-987654", None)


def test_credentials_are_not_forwarded_to_another_port_of_the_same_host(alice, victim, settings, stop_servers):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True  # so the hop to another loopback port is allowed at all
    server, token = redirecting(alice, f"http://127.0.0.1:{victim.port}/elsewhere")
    stop_servers.append(server)
    assert passthrough(alice, token, method="GET", path="/start").status_code == 200
    assert (server.requests[0].header("Authorization"), victim.requests[0].header("Authorization")) == (
        f"Bearer {TOKEN}", None)


@pytest.mark.parametrize("location", ["http://api.acme.test/v1/next", "https://api.acme.test:8443/v1/next"])
def test_credentials_are_dropped_when_a_redirect_changes_scheme_or_port(alice, location):
    import responses

    integration = make_integration(slug="acme-tls", base_url="https://api.acme.test/v1")
    _, token = make_connection(alice.organization, integration)
    with responses.RequestsMock() as mocked:
        mocked.add(responses.GET, "https://api.acme.test/v1/start", status=302, headers={"Location": location})
        mocked.add(responses.GET, location, json={"final": True})
        assert passthrough(alice, token, method="GET", path="/start").json()["status"] == 200
        first, hop = (call.request for call in mocked.calls)
    assert (first.headers.get("Authorization"), hop.headers.get("Authorization")) == (f"Bearer {TOKEN}", None)


def test_redirect_to_a_host_the_integration_does_not_allow_is_refused(alice, victim, settings, stop_servers):
    settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True  # the address guard would let it through: the allowlist does not
    server, token = redirecting(alice, f"http://localhost:{victim.port}/elsewhere", allowed=["other.example.test"])
    stop_servers.append(server)
    call = refused_logged(passthrough(alice, token, method="GET", path="/start"))
    assert "not an allowed host" in call.error
    assert victim.connections == 0


def test_see_other_after_post_is_followed_with_get_and_no_body(alice, stop_servers):
    server, token = redirecting(alice, "/result", status=303)
    stop_servers.append(server)
    passthrough(alice, token, method="POST", path="/start", data='{"a": 1}')
    assert [(r.method, r.body) for r in server.requests] == [("POST", b'{"a": 1}'), ("GET", b"")]


def test_temporary_redirect_after_post_keeps_method_and_body(alice, stop_servers):
    server, token = redirecting(alice, "/again", status=307)
    stop_servers.append(server)
    passthrough(alice, token, method="POST", path="/start", data='{"a": 1}')
    assert [(r.method, r.body) for r in server.requests] == [("POST", b'{"a": 1}'), ("POST", b'{"a": 1}')]


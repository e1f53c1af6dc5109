"""The SSRF address guard: which hosts and addresses a user-chosen URL may reach.

Used at URL-building time for IP literals and at connect time for every resolved address (see client.py), so the
address checked is the address connected to.
"""

import ipaddress
import re
import socket

from integration_platform.errors import InvalidInput

NEVER_REACHABLE = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "169.254.0.0/16", "255.255.255.255/32", "fe80::/10")]
NAT64 = ipaddress.ip_network("64:ff9b::/96")
HOST_CHARACTERS = re.compile(r"[a-z0-9_.:%-]+")  # names (after IDNA), IPv4 and IPv6 literals (with a zone)


class AddressRefused(InvalidInput):
    """A user-chosen host resolves to, or is, an address this platform must not reach."""


def normalize_host(host: str) -> str:
    """Lower-case, no trailing dot, no IPv6 brackets, IDNA-encoded. Raises InvalidInput for an invalid name."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise InvalidInput("Invalid host.", ["host: Must not be empty."])
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise InvalidInput("Invalid host.", [f"host: {host!r} is not a valid host name."]) from None
    if not HOST_CHARACTERS.fullmatch(host):  # NUL, spaces, control characters: no such host (and no crash later)
        raise InvalidInput("Invalid host.", [f"host: {host!r} is not a valid host name."])
    return host


def ip_literal(host: str):
    """The address if `host` is a canonical IP literal, else None. Odd IPv4 spellings are refused outright."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    # inet_aton accepts decimal (2130706433), octal (0177.0.0.1), hex (0x7f.1) and short (127.1) forms.
    raise AddressRefused("Host not allowed.", [f"host: {host!r} is a non-canonical IP address spelling."])


def effective(ip):
    """IPv6 addresses that carry an IPv4 address are judged as that IPv4 address: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::)."""
    if ip.version == 6:
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour:
            return ip.sixtofour
        if int(ip) >> 32 == 0 and int(ip) > 1:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def check_address(ip, allow_private: bool) -> None:
    """Raise AddressRefused unless `ip` may be reached. Link-local, unspecified, multicast: never."""
    ip = effective(ip)
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or any(ip in net for net in NEVER_REACHABLE if net.version == ip.version):
        raise AddressRefused("Host not allowed.", [f"address {ip} is never reachable (unspecified, link-local, multicast or broadcast)."])
    if (not ip.is_global or (ip.version == 6 and ip.is_site_local)) and not allow_private:
        raise AddressRefused("Host not allowed.", [f"address {ip} is private or loopback; overrides may only reach public addresses."])


def resolve_checked(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve once and check every address; returns them (the caller connects to these, never resolving again)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        check_address(ip, allow_private)
        addresses.append(str(ip))
    return addresses

"""Connection lifecycle events: connections/ announces them, higher apps subscribe (the apps layer one way).

LINKED: a new connection exists (API, admin or the connect flow). RELINKED: the connect flow replaced an existing
connection's credentials. NEEDS_REAUTH: the connection can no longer authenticate (refused token refresh).

Subscribers register in their AppConfig.ready() (explicit, readable list: `grep lifecycle.subscribe`). They run in
registration order, inside the caller's transaction; a subscriber that fails makes the whole change fail.
"""

LINKED, RELINKED, NEEDS_REAUTH = "linked", "relinked", "needs_reauth"

_subscribers: dict[str, list] = {LINKED: [], RELINKED: [], NEEDS_REAUTH: []}


def subscribe(event: str, receiver) -> None:
    """Call `receiver(connection, **details)` on every `event`; registering the same receiver twice is a no-op."""
    if receiver not in _subscribers[event]:
        _subscribers[event].append(receiver)


def announce(event: str, connection, **details) -> None:
    for receiver in _subscribers[event]:
        receiver(connection, **details)

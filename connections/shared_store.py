"""The shared store: the Redis of CACHE_URL, which holds the rate limiter's sliding logs and pauses in scale-out mode.

When it cannot be reached, the limiter fails closed: no permit can be counted, so nothing is sent upstream and a call
gets SharedStoreUnavailable (503 with Retry-After, in its surface's error shape) instead of a crash. It is not replaced
by a per-process count, which could not know what the other processes send and could only overrun the upstream's
limits. Calls work again by themselves as soon as the store answers. The outage is logged once per
LOG_INTERVAL_SECONDS per process (not once per call), and its recovery once; `shared_store_state()` tells operators
what the store is doing now.
"""

import contextlib
import logging
import threading
import time

import redis
from django.conf import settings

from integration_platform.errors import SharedStoreUnavailable

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
LOG_INTERVAL_SECONDS = 60.0
PING_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 5.0  # a Redis that accepts connections but hangs is down too
STORE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class _Outage:
    """This process's view of an outage: since when, and when it was last logged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.down_since = None
        self.logged_at = None

    def failed(self, exc) -> None:
        now = time.monotonic()
        with self.lock:
            self.down_since = self.down_since or time.time()
            due = self.logged_at is None or now - self.logged_at >= LOG_INTERVAL_SECONDS
            if due:
                self.logged_at = now
        if due:
            log.error("Shared store (CACHE_URL Redis) unreachable (%s: %s); calls that need rate-limit permits answer "
                      "503 until it is back.", type(exc).__name__, exc)

    def recovered(self) -> None:
        if self.down_since is None:  # the common case: no lock, no cost
            return
        with self.lock:
            down_since, self.down_since, self.logged_at = self.down_since, None, None
        if down_since is not None:
            log.warning("Shared store (CACHE_URL Redis) reachable again after %.1f s.", time.time() - down_since)


_outage = _Outage()


def unavailable(exc) -> SharedStoreUnavailable:
    """The error to answer for a Redis error of the shared store (met by the limiter, or by the cache); logged once
    per interval."""
    _outage.failed(exc)
    return SharedStoreUnavailable("The shared store (Redis, CACHE_URL) is unreachable, so rate limits cannot be "
                                  "checked; nothing was sent. Try again shortly.", retry_after=RETRY_AFTER_SECONDS)


@contextlib.contextmanager
def guard():
    """Run Redis commands of the shared store: an unreachable store becomes SharedStoreUnavailable; a success after
    an outage logs the recovery."""
    try:
        yield
    except STORE_ERRORS as exc:
        raise unavailable(exc) from None
    _outage.recovered()


_clients = {}


def redis_client(url: str | None = None) -> redis.Redis:
    """This process's client of the shared store (one connection pool per URL, kept for the process's life: a client
    per command, as Django's Redis cache makes, costs more than the command)."""
    url = url or settings.RATE_LIMIT_REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients.setdefault(url, redis.Redis.from_url(url, socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
                                                               socket_timeout=COMMAND_TIMEOUT_SECONDS))
    return client


def shared_store_state() -> dict:
    """What the shared store is doing now, for operators: `{"store", "available", "detail"}` (pings Redis)."""
    url = settings.RATE_LIMIT_REDIS_URL
    if not url:
        return {"store": "database", "available": True, "detail": "Local mode: rate limits are kept in the database."}
    client = redis.Redis.from_url(url, socket_connect_timeout=PING_TIMEOUT_SECONDS, socket_timeout=PING_TIMEOUT_SECONDS)
    try:
        client.ping()
    except STORE_ERRORS as exc:
        return {"store": "redis", "available": False,
                "detail": f"Unreachable ({type(exc).__name__}); sync calls answer 503 until it is back."}
    finally:
        client.close()
    return {"store": "redis", "available": True, "detail": "Reachable."}

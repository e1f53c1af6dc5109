"""An in-process cache of what every API call resolves first: the caller's API key and the connection of its account
token (with its integration), so that a warm call runs no SELECT for them.

Correctness does not rest on a TTL. Every write that changes what a call may do — an API key created or revoked, a
connection created, deleted, re-authed or paused, an integration or organization edited — bumps one generation value in
the shared store (the Redis of CACHE_URL), at once and again when its transaction commits. Each lookup reads that value;
a process whose entries were made under another value drops them all, so the change takes effect on the next call in
every process. Entries are only used under a value this
process read from the store: after the store was emptied, a fresh value is set and everything is read again. When the
store cannot be read, lookups go to the database, as without the cache. In local mode (the database cache) there is no
cache: reading a generation from the database would cost what the lookup costs.

Each call gets its own copy of the cached rows, so that nothing a call does to them reaches another call.
"""

import copy
import logging
import threading
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from connections import shared_store
from connections.models import last_used_outdated

log = logging.getLogger(__name__)
GENERATION_KEY = "hot-cache:generation"
MAX_ENTRIES = 10_000


def bump() -> None:
    """Invalidate every process's entries: now, and once more when the current transaction commits (a process reading
    the old row between the two drops it at the second). If the store cannot be written now, the write that called
    this fails (its transaction is rolled back): a revocation other processes would not see must not pass. Bumped
    with any Redis CACHE_URL, whatever this process's HOT_PATH_CACHE says, since the other processes' may differ."""
    if not settings.RATE_LIMIT_REDIS_URL:
        return
    try:
        _set_new_generation()
    except shared_store.STORE_ERRORS as exc:
        raise shared_store.unavailable(exc) from None
    transaction.on_commit(_bump_after_commit)


def _set_new_generation() -> None:
    cache.set(GENERATION_KEY, uuid.uuid4().hex, None)


def _bump_after_commit() -> None:
    try:
        _set_new_generation()
    except shared_store.STORE_ERRORS as exc:
        log.error("Could not invalidate the cached API keys and connections after a commit (%s); a process that read "
                  "the row between the write and its commit may use it until the next write.", type(exc).__name__)


class HotCache:
    def __init__(self):
        self.lock = threading.Lock()
        self.generation = None
        self.entries = {}

    def _current(self) -> str | None:
        """The store's generation (this process's entries are dropped if it changed), or None: do not cache."""
        try:
            generation = cache.get(GENERATION_KEY)
            if generation is None:
                cache.add(GENERATION_KEY, uuid.uuid4().hex, None)
                return None
        except shared_store.STORE_ERRORS:
            return None
        if generation != self.generation:
            with self.lock:
                self.generation, self.entries = generation, {}
        return generation

    def get(self, key, load):
        """A copy of the entry for `key`, loaded by `load()` (which returns a model instance or None) on a miss."""
        if not (settings.HOT_PATH_CACHE and settings.RATE_LIMIT_REDIS_URL):
            return load()  # with the database cache, reading the generation would cost what `load` costs
        generation = self._current()
        if generation is None:
            return load()
        entry = self.entries.get(key)
        if entry is None:
            entry = load()
            if entry is None:
                return None
            with self.lock:
                if self.generation == generation:
                    if len(self.entries) >= MAX_ENTRIES:
                        self.entries = {}
                    self.entries[key] = entry
        return _copy(entry)

    def connection(self, key, load):
        """`get` for a connection (with its integration), marked as current for this call — checked against every
        write, or just read — so that the rate limiter takes its windows from the integration instead of reading them
        again (ratelimit.connection_windows); a retry of the same call keeps them."""
        connection = self.get(key, load)
        if connection is not None and settings.HOT_PATH_CACHE and settings.RATE_LIMIT_REDIS_URL:
            connection.integration_checked = True
        return connection


def _copy(instance):
    """A copy of `instance` and of the related rows it holds (select_related)."""
    duplicate = copy.copy(instance)
    for name, related in instance._state.fields_cache.items():
        duplicate._state.fields_cache[name] = copy.copy(related) if related is not None else None
    # `last_used_at` is written at most once a resolution period (models.py): the first call to see it outdated
    # writes it (touch), the next ones see the cached row as just used.
    now = timezone.now()
    if last_used_outdated(instance.last_used_at, now):
        instance.last_used_at = now
    return duplicate


api_keys = HotCache()
connections = HotCache()


def _bump_on_write(sender, **kwargs):
    bump()


def connect_signals():
    from connections.models import ApiKey, Connection, Integration, Organization

    for model in (ApiKey, Connection, Integration, Organization):
        post_save.connect(_bump_on_write, sender=model, dispatch_uid=f"hot-cache-save-{model.__name__}")
        post_delete.connect(_bump_on_write, sender=model, dispatch_uid=f"hot-cache-delete-{model.__name__}")

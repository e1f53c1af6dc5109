"""An in-process cache of what every API call resolves first: the caller's API key and the connection of its account
token (with its integration and the integration's passthrough function id), so that a warm call reads none of them
from the database.

Correctness does not rest on a TTL. Every write that changes what a call may do — an API key created or revoked, a
connection created, deleted, re-authed or paused, an integration, its functions or an organization edited — bumps one
generation value in the shared store (the Redis of CACHE_URL), at once and again when its transaction commits. A request
reads that value once, at its first lookup (its later lookups use the same reading); a process whose entries were made
under another value drops them all, so the change takes effect on the next request in every process.

The calls that go upstream read it in the same round trip as their rate-limit permit: views marked with
`@checked_at_permit` use the entries under the value this process last read, and the limiter's script compares that
value with the store's before it takes a permit. If they differ, nothing is sent: `Stale` is raised and the
`LookupsCheckedAtPermit` middleware runs the request again, reading the store first. An answer such a view gives
without taking a permit (an error, a GET) is checked with one read before it goes out. So every answer was given under
the store's current value: after the store was emptied, a fresh value is set and everything is read again. When the
store cannot be read, lookups go to the database, as without the cache. In local mode (the database cache) there is
no cache: reading a generation from the database would cost what the lookup costs.

Each call gets its own copy of the cached rows, so that nothing a call does to them reaches another call.
"""

import logging
import threading
import uuid

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import transaction
from django.db.models.base import ModelState
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
    _cache.request.generation = None  # a lookup later in this request reads the new value
    try:
        _set_new_generation()
    except shared_store.STORE_ERRORS as exc:
        raise shared_store.unavailable(exc) from None
    transaction.on_commit(_bump_after_commit)


class Stale(BaseException):
    """The generation a request's lookups used is no longer the store's: nothing was sent, run the request again.

    A BaseException, so that no `except Exception` between the limiter and the middleware (DRF's, Django's, a
    dialect's error handler) turns it into an error answer."""


def _set_new_generation() -> None:
    shared_store.redis_client().set(GENERATION_KEY, uuid.uuid4().hex)


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
        # This thread's current request (`in_request`, set by Django's request signals) and the generation it read.
        # Outside requests (workers, commands) nothing sets them, so every lookup reads the store.
        self.request = threading.local()

    def _current(self) -> str | None:
        """The store's generation (this process's entries are dropped if it changed), or None: do not cache."""
        generation = getattr(self.request, "generation", None)
        if generation is not None:
            return generation
        if getattr(self.request, "checked_at_permit", False) and self.generation is not None:
            self.request.generation = self.request.unchecked = self.generation
            return self.generation
        try:
            generation = shared_store.redis_client().get(GENERATION_KEY)
            if generation is None:
                shared_store.redis_client().set(GENERATION_KEY, uuid.uuid4().hex, nx=True)
                return None
        except shared_store.STORE_ERRORS:
            return None
        if generation != self.generation:
            with self.lock:
                self.generation, self.entries = generation, {}
        if getattr(self.request, "in_request", False):
            self.request.generation = generation
        return generation

    def get(self, key, load):
        """A copy of the entry for `key`, loaded by `load()` (which returns a model instance, a list of them, or None)
        on a miss."""
        if not enabled():
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


def enabled() -> bool:
    return bool(settings.HOT_PATH_CACHE and settings.RATE_LIMIT_REDIS_URL)


def _copy(entry):
    if isinstance(entry, list):
        return [_copy(instance) for instance in entry]
    return _copy_instance(entry)


def _copy_instance(instance):
    """A copy of `instance` and of the related rows it holds (select_related). Built by hand: copy.copy goes through
    the model's pickling protocol, which costs several times more."""
    duplicate = object.__new__(type(instance))
    duplicate.__dict__.update(instance.__dict__)
    state = duplicate._state = ModelState()
    state.db, state.adding = instance._state.db, instance._state.adding
    state.fields_cache = {name: _copy_instance(related) if related is not None else None
                          for name, related in instance._state.fields_cache.items()}
    # `last_used_at` is written at most once a resolution period (models.py): the first call to see it outdated
    # writes it (touch), the next ones see the cached row as just used.
    if hasattr(instance, "last_used_at"):
        now = timezone.now()
        if last_used_outdated(instance.last_used_at, now):
            instance.last_used_at = now
    return duplicate


_cache = HotCache()


def api_key(key_id: str, load):
    """The active API key `key_id` (with its organization), or None; `load()` reads it on a miss."""
    return _cache.get(("api-key", key_id), load)


def connection(key, load):
    """The connection cached under `key` (with its integration and `passthrough_function_id`), or None; `load()`
    reads it on a miss. It is marked as current for this call — checked against every write, or just read — so that
    the rate limiter takes its windows from the integration instead of reading them again
    (ratelimit.connection_windows); a retry of the same call keeps them."""
    found = _cache.get(("connection", *key), load)
    if found is not None and enabled():
        found.integration_checked = True
    return found


def function(name: str, load):
    """The callable function `name` (with its integration), or None; `load()` reads it on a miss."""
    return _cache.get(("function", name), load)


def end_user_connections(organization_id, integration_id, end_user_id, load) -> list:
    """An end user's connections to one integration (Integry calls name the user, not the connection); `load()` reads
    them on a miss."""
    found = _cache.get(("end-user", organization_id, integration_id, end_user_id), load)
    if enabled():
        for connection in found:
            connection.integration_checked = True
    return found


def clear() -> None:
    """Drop this process's entries (tests)."""
    with _cache.lock:
        _cache.entries = {}


def _bump_on_write(sender, **kwargs):
    bump()


def _request_started(**kwargs):
    _forget_reading()
    _cache.request.in_request, _cache.request.run_again = True, False


def _request_finished(**kwargs):
    _forget_reading()
    _cache.request.in_request, _cache.request.run_again = False, False


def _forget_reading() -> None:
    state = _cache.request
    state.generation = state.unchecked = None
    state.checked_at_permit = False


# --- One round trip: the generation checked with the permit ---------------------------------------------------------

def checked_at_permit(view):
    """Mark a view (class or function) whose lookups may be checked by the rate-limit permit's script."""
    view.lookups_checked_at_permit = True
    return view


def unchecked_generation() -> str | None:
    """The generation this request's lookups used without reading the store, if not checked since."""
    return getattr(_cache.request, "unchecked", None)


def checked() -> None:
    """The store's generation was found equal to `unchecked_generation()` (by the permit's script)."""
    _cache.request.unchecked = None


class LookupsCheckedAtPermit:
    """Middleware: runs a `@checked_at_permit` view with its lookups checked by its permit, and runs it again, with
    the store read first, when they were stale (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            response = self.get_response(request)
        except Stale:
            return self._again(request)
        generation = unchecked_generation()
        if generation is not None and not self._current(generation):
            return self._again(request)
        return response

    @staticmethod
    def process_view(request, view_func, view_args, view_kwargs):
        view = getattr(view_func, "view_class", view_func)
        marked = getattr(view, "lookups_checked_at_permit", False)
        if enabled() and marked and not getattr(_cache.request, "run_again", False):
            request.body  # noqa: B018 - read now, so that a second run can parse it again
            _cache.request.checked_at_permit = True

    @staticmethod
    def _current(generation) -> bool:
        try:
            return shared_store.redis_client().get(GENERATION_KEY) == generation
        except shared_store.STORE_ERRORS:
            return False

    def _again(self, request):
        _forget_reading()
        _cache.request.run_again = True  # reading the store first, as any request
        return self.get_response(request)


def connect_signals():
    from connections.models import ApiKey, Connection, Function, Integration, Organization

    request_started.connect(_request_started, dispatch_uid="hot-cache-request-started")
    request_finished.connect(_request_finished, dispatch_uid="hot-cache-request-finished")
    for model in (ApiKey, Connection, Function, Integration, Organization):
        post_save.connect(_bump_on_write, sender=model, dispatch_uid=f"hot-cache-save-{model.__name__}")
        post_delete.connect(_bump_on_write, sender=model, dispatch_uid=f"hot-cache-delete-{model.__name__}")

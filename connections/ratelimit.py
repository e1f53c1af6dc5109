"""Outbound rate limits: one limiter for every request that leaves for an integration, in every process.

A catalog window `{"requests": N, "per_seconds": W}` means at most N requests in any span of W seconds. We keep an
exact sliding log of sends per scope (the integration, or one connection when a window says `"per": "connection"`)
and admit a request only if, for every window, fewer than N sends fall in the last W seconds.

The upstream counts arrivals, not our sends: two requests sent exactly W apart arrive less than W apart when the first
was slower on its way (a busy CPU, a new connection, the network; measured on a loaded machine: up to 180 ms). So a
send is logged at the latest instant it can have arrived: when its answer came back (`settle`), or the permit's time
plus RATE_LIMIT_SAFETY_MARGIN_SECONDS if that is earlier (or the answer is still awaited). A fast upstream costs its
answer time per window, a slow one at most the margin.

The log lives in Redis when CACHE_URL is redis:// (one Lua script trims, counts and records atomically) and in the
database otherwise (a transaction that holds SQLite's write lock, or a row lock on PostgreSQL).

Interactive calls may use the whole window and wait briefly, then get `RateLimited`; background work takes a permit
only while less than `1 - RATE_LIMIT_BACKGROUND_RESERVE` of a window is used (interactive sends included) and sleeps
up to a bound, then gets `PermitDelayed` (re-queue it with that delay). Upstream signals (Retry-After on 429/503,
X-RateLimit-Remaining: 0 with a reset) pause the connection that received them (or the whole integration when its
catalog entry says `"pause": "integration"`) for every process until the instant they name. The contract is
spec/limits.md.
"""

import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Greatest

from connections import hot_cache, shared_store
from connections.catalog import validate_rate_limits
from connections.models import Integration, RateLimitScope, RateLimitSend
from integration_platform import metrics
from integration_platform.errors import RateLimited, SharedStoreUnavailable

log = logging.getLogger(__name__)

INTERACTIVE, BACKGROUND = "interactive", "background"
PER_INTEGRATION, PER_CONNECTION = "integration", "connection"
# A reset larger than this is a Unix time: as a delta it would be more than 31 years.
UNIX_TIME_THRESHOLD = 1_000_000_000
NUMBER = re.compile(r"\d+(\.\d+)?")


class PermitDelayed(RateLimited):
    """Background work found no permit within its bound: run it again after `delay` seconds. Not a failure."""

    def __init__(self, message, delay: float):
        super().__init__(message, retry_after=whole_seconds(delay))
        self.delay = delay


def whole_seconds(seconds: float) -> int:
    # Rounded to the microsecond first, so float noise (2.0000000001) does not add a second.
    return max(1, math.ceil(round(seconds, 6)))


# --- Windows -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    requests: int
    per_seconds: float
    per: str = PER_INTEGRATION

    def allowance(self, priority: str) -> int:
        """How many sends of this priority the window admits; background leaves the reserve (but gets at least 1)."""
        if priority == INTERACTIVE:
            return self.requests
        share = 1 - min(max(settings.RATE_LIMIT_BACKGROUND_RESERVE, 0.0), 1.0)
        return max(1, math.floor(round(self.requests * share, 6)))

    def __str__(self):
        return f"{self.requests} requests per {self.per_seconds:g} s per {self.per}"


def windows_of(rate_limits) -> list[Window]:
    """The valid windows of a catalog `rate_limits` value (the catalog and admin validate; a bad entry is skipped)."""
    if not isinstance(rate_limits, list):
        return []
    return [Window(entry["requests"], float(entry["per_seconds"]), entry.get("per", PER_INTEGRATION))
            for entry in rate_limits if not validate_rate_limits([entry])]


def current_windows(integration_id) -> list[Window]:
    # Read per call, so `load_catalog` and admin edits apply to the next request in every process.
    return windows_of(Integration.objects.filter(pk=integration_id).values_list("rate_limits", flat=True).first())


def connection_windows(connection) -> list[Window]:
    """The windows for a request of `connection`: from its integration when the hot cache checked that row against
    every write at the start of this request (connections/hot_cache.py), else read from the database."""
    if getattr(connection, "integration_checked", False):
        return windows_of(connection.integration.rate_limits)
    return current_windows(connection.integration_id)


@dataclass(frozen=True)
class Scope:
    """What a sliding log or a pause counts: a whole integration, or one connection of it."""

    integration_id: int
    connection_id: int | None = None

    @property
    def key(self) -> str:
        if self.connection_id is None:
            return f"integration:{self.integration_id}"
        return f"connection:{self.connection_id}"


def scopes_of(connection) -> tuple[Scope, Scope]:
    return Scope(connection.integration_id), Scope(connection.integration_id, connection.pk)


# --- Upstream signals ----------------------------------------------------------------------------------------------

def _header(headers, name: str):
    pairs = headers.items() if hasattr(headers, "items") else headers
    return next((str(value).strip() for key, value in pairs if key.lower() == name), None)


def retry_after_instant(value, now: float) -> float | None:
    """The Unix time a Retry-After value names (delta-seconds or HTTP-date, to the sub-second); None if garbage."""
    if value is None:
        return None
    if NUMBER.fullmatch(value):
        return now + float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime form: HTTP-dates are always GMT
        when = when.replace(tzinfo=dt_timezone.utc)
    return when.timestamp()


def reset_instant(value, now: float) -> float | None:
    """The Unix time an X-RateLimit-Reset / RateLimit-Reset value names (Unix time or delta-seconds); None if garbage."""
    if value is None or not NUMBER.fullmatch(value):
        return None
    number = float(value)
    return number if number >= UNIX_TIME_THRESHOLD else now + number


def pause_until(status: int, headers, now: float) -> float | None:
    """Until when an upstream answer asks us to send nothing more (capped), or None if it does not."""
    instants = []
    if status in (429, 503):
        instants.append(retry_after_instant(_header(headers, "retry-after"), now))
    remaining = _header(headers, "x-ratelimit-remaining") or _header(headers, "ratelimit-remaining")
    if remaining is not None and NUMBER.fullmatch(remaining) and float(remaining) == 0:
        instants.append(reset_instant(_header(headers, "x-ratelimit-reset") or _header(headers, "ratelimit-reset"), now))
    instants = [instant for instant in instants if instant is not None and instant > now]
    if not instants:
        return None
    return min(max(instants), now + settings.RATE_LIMIT_MAX_PAUSE_SECONDS)


# --- Backends ------------------------------------------------------------------------------------------------------
# `take(now, pauses, checks, until)` decides atomically: it returns (0.0, handle) and records a send in every checked
# scope, counted until `until` + per_seconds, or returns (seconds until a permit could be free, None), nothing
# recorded. `checks` are (scope, allowance, per_seconds) triples. `settle(handle, until)` moves a recorded send's
# instant earlier (never later).

def _longest_per_scope(checks) -> dict:
    longest = {}
    for scope, _, per_seconds in checks:
        longest[scope] = max(longest.get(scope, 0.0), per_seconds)
    return longest


class DatabaseBackend:
    """Local mode: the log is a table. SQLite's write lock (transactions BEGIN IMMEDIATE) or the scope rows' locks
    on PostgreSQL make each decision one at a time."""

    def take(self, now: float, pauses, checks, until: float, generation=None) -> tuple[float, object]:
        longest = _longest_per_scope(checks)  # `generation` is never set in local mode: no hot cache
        if not longest:
            return self._paused_for(pauses, now), None
        with transaction.atomic():
            rows = self._locked(longest)
            paused_for = self._paused_for(pauses, now)  # read under the lock: a pause recorded meanwhile counts
            if paused_for > 0:
                return paused_for, None
            for scope, seconds in longest.items():
                RateLimitSend.objects.filter(scope=rows[scope], sent_at__lte=now - seconds).delete()
            wait = 0.0
            for scope, allowance, per_seconds in checks:
                recent = RateLimitSend.objects.filter(scope=rows[scope], sent_at__gt=now - per_seconds)
                count = recent.count()
                if count >= allowance:
                    leaving = recent.order_by("sent_at").values_list("sent_at", flat=True)[count - allowance]
                    wait = max(wait, leaving + per_seconds - now)
            if wait > 0:
                return wait, None
            sends = RateLimitSend.objects.bulk_create([RateLimitSend(scope=row, sent_at=until) for row in rows.values()])
            return 0.0, [send.pk for send in sends]

    def settle(self, handle, until: float) -> None:
        RateLimitSend.objects.filter(pk__in=handle, sent_at__gt=until).update(sent_at=until)

    @staticmethod
    def _paused_for(pauses, now: float) -> float:
        keys = [scope.key for scope in pauses]
        paused = max(RateLimitScope.objects.filter(key__in=keys).values_list("paused_until", flat=True), default=0.0)
        return max(paused - now, 0.0)

    def _locked(self, scopes) -> dict:
        """The scopes' rows, created if missing, locked in key order (no deadlock between two calls)."""
        keys = sorted(scope.key for scope in scopes)
        rows = list(RateLimitScope.objects.select_for_update().filter(key__in=keys).order_by("key"))
        if len(rows) < len(keys):
            self._ensure(scopes)
            rows = list(RateLimitScope.objects.select_for_update().filter(key__in=keys).order_by("key"))
        by_key = {row.key: row for row in rows}
        return {scope: by_key[scope.key] for scope in scopes}

    def _ensure(self, scopes):
        RateLimitScope.objects.bulk_create(
            [RateLimitScope(key=s.key, integration_id=s.integration_id, connection_id=s.connection_id) for s in scopes],
            ignore_conflicts=True)

    def pause(self, scope: Scope, until: float, now: float) -> None:
        self._ensure([scope])
        RateLimitScope.objects.filter(key=scope.key).update(paused_until=Greatest(F("paused_until"), Value(until)))

    def usage(self, integration_id, windows, now: float) -> dict:
        sends = RateLimitSend.objects.filter(scope__integration_id=integration_id)
        used = []
        for window in windows:
            recent = sends.filter(sent_at__gt=now - window.per_seconds)
            if window.per == PER_CONNECTION:
                busiest = (recent.filter(scope__connection__isnull=False).values("scope")
                           .annotate(n=Count("id")).order_by("-n").first())
                used.append(busiest["n"] if busiest else 0)
            else:
                used.append(recent.filter(scope__connection__isnull=True).count())
        scopes = RateLimitScope.objects.filter(integration_id=integration_id, paused_until__gt=now)
        return {"used": used,
                "paused_until": scopes.filter(connection__isnull=True).values_list("paused_until", flat=True).first(),
                "paused_connections": scopes.filter(connection__isnull=False).count()}


TAKE_SCRIPT = """
-- KEYS: P pause keys, then L log keys, then the hot cache's generation key. ARGV: now, member, P, L, until, the
-- generation the caller's lookups used ('' if checked already), L longest windows, then (log, allowance, per) triples.
-- A send is recorded with the score `until`. 'stale': the generation is not the caller's, nothing recorded.
local now, p, l = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local untl = tonumber(ARGV[5])
if ARGV[6] ~= '' and redis.call('GET', KEYS[p + l + 1]) ~= ARGV[6] then return 'stale' end
local wait = 0
for i = 1, p do
  local paused = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if paused - now > wait then wait = paused - now end
end
if wait > 0 then return string.format('%.17g', wait) end
for j = 1, l do
  redis.call('ZREMRANGEBYSCORE', KEYS[p + j], '-inf', string.format('%.17g', now - tonumber(ARGV[6 + j])))
end
for i = 7 + l, #ARGV, 3 do
  local key, allowance, per = KEYS[p + tonumber(ARGV[i])], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local since = string.format('(%.17g', now - per)
  local count = redis.call('ZCOUNT', key, since, '+inf')
  if count >= allowance then
    local leaving = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', count - allowance, 1)
    local free = tonumber(leaving[2]) + per - now
    if free > wait then wait = free end
  end
end
if wait > 0 then return string.format('%.17g', wait) end
for j = 1, l do
  redis.call('ZADD', KEYS[p + j], ARGV[5], ARGV[2])
  redis.call('PEXPIRE', KEYS[p + j], math.ceil((untl - now + tonumber(ARGV[6 + j])) * 1000) + 1000)
end
return '0'
"""

SETTLE_SCRIPT = """
-- KEYS: the logs holding ARGV[1]; its score becomes ARGV[2] where that is earlier.
for i = 1, #KEYS do
  local score = redis.call('ZSCORE', KEYS[i], ARGV[1])
  if score and tonumber(ARGV[2]) < tonumber(score) then redis.call('ZADD', KEYS[i], 'XX', ARGV[2], ARGV[1]) end
end
return 0
"""

PAUSE_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 0
"""


class RedisBackend:
    """Scale-out: a sorted set of send times per scope, trimmed, counted and added to in one Lua script.

    Keys carry the integration id as a hash tag; a take also reads the hot cache's generation key (one round trip
    for both), so the store is one Redis, not a Cluster."""

    def __init__(self, url: str, prefix: str = "ratelimit"):
        self.redis = shared_store.redis_client(url)
        self.prefix = prefix
        self.take_script = self.redis.register_script(TAKE_SCRIPT)
        self.settle_script = self.redis.register_script(SETTLE_SCRIPT)
        self.pause_script = self.redis.register_script(PAUSE_SCRIPT)

    def _key(self, kind: str, scope: Scope) -> str:
        return f"{self.prefix}:{{{scope.integration_id}}}:{kind}:{scope.key}"

    def _connection_keys(self, kind: str, integration_id) -> list:
        return list(self.redis.scan_iter(f"{self.prefix}:{{{integration_id}}}:{kind}:connection:*"))

    def take(self, now: float, pauses, checks, until: float, generation=None) -> tuple[float, object]:
        """`generation`: the hot cache generation the caller's lookups used, checked in the same round trip (raises
        hot_cache.Stale if it is not the store's)."""
        longest = _longest_per_scope(checks)
        logs = list(longest)
        member = uuid.uuid4().hex
        args = [repr(now), member, len(pauses), len(logs), repr(until), generation or "", *(repr(longest[s]) for s in logs)]
        for scope, allowance, per_seconds in checks:
            args += [logs.index(scope) + 1, allowance, repr(per_seconds)]
        log_keys = [self._key("log", s) for s in logs]
        keys = [self._key("pause", s) for s in pauses] + log_keys + [hot_cache.GENERATION_KEY]
        with shared_store.guard():
            answer = self.take_script(keys=keys, args=args)
        if answer == b"stale":
            raise hot_cache.Stale()
        wait = float(answer)
        return wait, ((log_keys, member) if wait <= 0 and log_keys else None)

    def settle(self, handle, until: float) -> None:
        log_keys, member = handle
        with shared_store.guard():
            self.settle_script(keys=log_keys, args=[member, repr(until)])

    def pause(self, scope: Scope, until: float, now: float) -> None:
        ttl_ms = math.ceil((until - now) * 1000) + 1000
        with shared_store.guard():
            self.pause_script(keys=[self._key("pause", scope)], args=[repr(until), ttl_ms])

    def usage(self, integration_id, windows, now: float) -> dict:
        with shared_store.guard():
            return self._usage(integration_id, windows, now)

    def _usage(self, integration_id, windows, now: float) -> dict:
        integration = Scope(integration_id)
        connection_logs = self._connection_keys("log", integration_id)
        used = []
        for window in windows:
            since = f"({now - window.per_seconds!r}"
            logs = connection_logs if window.per == PER_CONNECTION else [self._key("log", integration)]
            used.append(max((self.redis.zcount(key, since, "+inf") for key in logs), default=0))
        paused = float(self.redis.get(self._key("pause", integration)) or 0)
        connection_pauses = self._connection_keys("pause", integration_id)
        return {"used": used, "paused_until": paused if paused > now else None,
                "paused_connections": sum(1 for key in connection_pauses if float(self.redis.get(key) or 0) > now)}


_redis_backends = {}


def configured_backend():
    """Redis when RATE_LIMIT_REDIS_URL is set (scale-out), else the database (local mode)."""
    url = settings.RATE_LIMIT_REDIS_URL
    if not url:
        return DatabaseBackend()
    if url not in _redis_backends:
        _redis_backends[url] = RedisBackend(url)
    return _redis_backends[url]


# --- The limiter ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ticket:
    """A permit taken at `taken_at` after waiting `waited` s; `handle` says where the backend recorded it."""

    handle: object
    taken_at: float
    waited: float


class Limiter:
    """Permits for outbound requests. `clock` (Unix time) and `sleep` are injectable, so tests use a fake clock."""

    def __init__(self, backend, clock=time.time, sleep=time.sleep):
        self.backend, self.clock, self.sleep = backend, clock, sleep

    def acquire(self, connection, priority: str = INTERACTIVE, budget: float = math.inf) -> Ticket:
        """Take one permit for a request of `connection`, waiting if need be; returns its Ticket (`settle` it when
        the request's answer is in).

        Interactive: waits at most RATE_LIMIT_INTERACTIVE_MAX_WAIT (no more than the shortest window, nor `budget`),
        else raises RateLimited with whole seconds until the next permit (after waiting out the fraction of a second,
        when the bound allows, so that they are exact). Background: uses only its allowance and
        waits at most RATE_LIMIT_BACKGROUND_MAX_WAIT (nor `budget`), else raises PermitDelayed. A permit is never
        given back.
        """
        if priority not in (INTERACTIVE, BACKGROUND):
            raise ValueError(f"Unknown priority {priority!r}.")
        windows = connection_windows(connection)
        integration_scope, connection_scope = scopes_of(connection)
        checks = [(connection_scope if w.per == PER_CONNECTION else integration_scope, w.allowance(priority),
                   w.per_seconds) for w in windows]
        if priority == INTERACTIVE:
            bound = min([settings.RATE_LIMIT_INTERACTIVE_MAX_WAIT, budget] + [w.per_seconds for w in windows])
        else:
            bound = min(settings.RATE_LIMIT_BACKGROUND_MAX_WAIT, budget)
        started = self.clock()
        while True:
            now = self.clock()
            wait, handle = self.backend.take(now, [integration_scope, connection_scope], checks, now + self.margin(),
                                             generation=hot_cache.unchecked_generation())
            hot_cache.checked()
            if wait <= 0:
                metrics.LIMITER_WAIT_SECONDS.labels(connection.integration.slug, priority).observe(now - started)
                return Ticket(handle, now, now - started)
            if self.clock() - started + wait <= bound:
                self.sleep(wait)
                continue
            fraction = wait - math.floor(wait)
            if priority == INTERACTIVE and 0 < fraction and self.clock() - started + fraction <= bound:
                # Wait out the fraction of a second first: the whole seconds left are then exact, and a caller who
                # honours Retry-After comes back as the permit frees, not up to a second later (an idle permit).
                self.sleep(fraction)
                continue
            raise self._refusal(connection, priority, wait)

    @staticmethod
    def margin() -> float:
        return max(settings.RATE_LIMIT_SAFETY_MARGIN_SECONDS, 0.0)

    def settle(self, ticket: Ticket) -> None:
        """The request's answer is in (or it failed): it reached the upstream by now, if at all. Its send counts
        from now, or from `margin` after the permit if the answer took longer."""
        if ticket.handle is not None:
            self.backend.settle(ticket.handle, min(self.clock(), ticket.taken_at + self.margin()))

    def _refusal(self, connection, priority, wait) -> RateLimited:
        metrics.RATE_LIMITED.labels(connection.integration.slug, priority).inc()
        name = connection.integration.name
        if priority == BACKGROUND:
            return PermitDelayed(f"No rate-limit permit for {name} free yet; run again in {wait:.3f} s.", delay=wait)
        seconds = whole_seconds(wait)
        return RateLimited(f"Rate limit for {name} reached; nothing was sent.", [f"Retry after {seconds} s."],
                           retry_after=seconds)

    def observe(self, connection, status: int, headers) -> float | None:
        """Pause the connection (or, when its catalog entry says `"pause": "integration"`, the whole integration)
        for every process if the upstream's answer asks for it; returns the instant, or None. Garbage in the headers
        is ignored."""
        now = self.clock()
        until = pause_until(status, headers, now)
        if until is None:
            return None
        integration_scope, connection_scope = scopes_of(connection)
        pause = Integration.objects.filter(pk=connection.integration_id).values_list("pause", flat=True).first()
        scope = integration_scope if pause == Integration.PAUSE_INTEGRATION else connection_scope
        self.backend.pause(scope, until, now)
        metrics.UPSTREAM_PAUSES.labels(connection.integration.slug).inc()
        log.info("Upstream asked to pause %s for %.3f s (HTTP %s).", scope.key, until - now, status)
        return until

    def usage(self, integration) -> list[str]:
        """Lines for operators: each window with its current use, and any upstream pause."""
        windows = current_windows(integration.pk)
        now = self.clock()
        try:
            usage = self.backend.usage(integration.pk, windows, now)
        except SharedStoreUnavailable as exc:
            return [exc.message]
        lines = [f"{window}: {used} used in the last {window.per_seconds:g} s"
                 + (" (busiest connection)" if window.per == PER_CONNECTION else "")
                 for window, used in zip(windows, usage["used"])] or ["No rate limits declared."]
        if usage["paused_until"]:
            instant = datetime.fromtimestamp(usage["paused_until"], dt_timezone.utc).isoformat(timespec="seconds")
            lines.append(f"Paused by the upstream until {instant}.")
        if usage["paused_connections"]:
            lines.append(f"{usage['paused_connections']} connection(s) paused by the upstream.")
        return lines


def limiter() -> Limiter:
    """The limiter every outbound call uses (tests replace it with one on a fake clock)."""
    return Limiter(configured_backend())


class Permit:
    """The permits of one outbound call: one per request it sends (redirect hops too), taken right before sending."""

    def __init__(self, connection, priority: str = INTERACTIVE, max_wait: float = math.inf):
        self.connection, self.priority, self.max_wait = connection, priority, max_wait
        self.waited_in_background = 0.0
        self.ticket = None
        self.taken = False

    def take(self, deadline: float) -> float:
        """Wait for and take a permit; returns the (monotonic) deadline the request must now meet.

        An interactive caller is waiting, so its wait comes out of the call's budget. A background wait does not:
        the budget is the upstream's time to answer."""
        try:
            deadline = self._take(deadline)
        except SharedStoreUnavailable as exc:
            if self.taken:
                # An earlier hop of this call was sent, so the call must not pass for one never sent (it would be
                # repeated): like any permit refused for a later hop, the client reports an unusable answer.
                raise RateLimited(exc.message, retry_after=exc.retry_after) from None
            raise
        self.taken = True
        return deadline

    def _take(self, deadline: float) -> float:
        if self.priority == INTERACTIVE:
            self.ticket = limiter().acquire(self.connection, INTERACTIVE, budget=deadline - time.monotonic())
            return deadline
        self.ticket = limiter().acquire(self.connection, BACKGROUND, budget=self.max_wait - self.waited_in_background)
        self.waited_in_background += self.ticket.waited
        return deadline + self.waited_in_background

    def settle(self) -> None:
        """The request's answer (or its failure) is in: see Limiter.settle."""
        ticket, self.ticket = self.ticket, None
        if ticket is None:
            return
        try:
            limiter().settle(ticket)
        except SharedStoreUnavailable:
            pass  # logged once per interval by shared_store; the send counts from the pessimistic instant
        except Exception:
            # Harmless: the send keeps counting from `margin` after its permit, the pessimistic instant.
            log.warning("Could not settle a rate-limit permit of %s.", self.connection.pk, exc_info=True)

    def observe(self, status: int, headers) -> None:
        try:
            limiter().observe(self.connection, status, headers)
        except SharedStoreUnavailable:
            pass  # logged once per interval by shared_store
        except Exception:
            # The request was sent and answered: losing that answer over the pause store would be worse.
            log.warning("Could not record the upstream's rate-limit signal for %s.", self.connection.pk, exc_info=True)

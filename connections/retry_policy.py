"""The one rule for trying again: which failures are transient, and how long to wait before the next attempt.

Every caller that repeats work asks a RetryPolicy: sync passthrough (when the caller sent X-Passthrough-Retries),
async passthrough, syncing's page requests and webhook deliveries. They differ only in their parameters: the backoff
shape and how many attempts they make.

Transient (another attempt may succeed):
- our own failures, as their class says (`PlatformError.transient`): the upstream could not be reached or did not
  answer in time, our limiter or shared store refused for now. Permanent: bad input, a refused address, and an answer
  that came but cannot be used (larger than OUTBOUND_MAX_RESPONSE_BYTES, cut off, a refused redirect) — it would
  come the same way again, and the upstream may have acted on the request;
- an upstream answer 408, 429 or 5xx. Every other status is the upstream's final word.
A request that is not idempotent is repeated only when the upstream said it did not act on it (429, 503): after a
network error or a 500 it may have acted, and a second POST would act twice.
"""

import math
import random
import time
from dataclasses import dataclass

from django.conf import settings

from connections import ratelimit

NOT_ACTED_ON = frozenset({429, 503})


@dataclass(frozen=True)
class Backoff:
    """Retry n waits base × factor^(n − 1) plus up to `jitter` of that (so many retries spread out), at most `cap`."""

    base: float
    factor: float = 2.0
    jitter: float = 0.25
    cap: float = math.inf

    def delay(self, retry: int) -> float:
        return min(self.base * self.factor ** (retry - 1) * random.uniform(1.0, 1.0 + self.jitter), self.cap)


@dataclass(frozen=True)
class RetryPolicy:
    backoff: Backoff
    max_attempts: int

    @staticmethod
    def transient(*, idempotent: bool, response=None, error: Exception | None = None) -> bool:
        """Whether the same request, sent again later, may succeed and is safe to send (see the module docstring)."""
        if error is not None:
            return idempotent and getattr(error, "transient", False)
        if not idempotent:
            return response.status in NOT_ACTED_ON
        return response.status in (408, 429) or response.status >= 500

    def delay(self, attempts: int, response=None, now: float | None = None) -> float:
        """Seconds before attempt `attempts + 1`: the backoff, or longer if the upstream asked (Retry-After,
        X-RateLimit-Reset); never more than the backoff's cap."""
        delay = self.backoff.delay(attempts)
        if response is not None:
            now = time.time() if now is None else now
            until = ratelimit.pause_until(response.status, response.headers, now)
            if until is not None:
                delay = max(delay, until - now)
        return min(delay, self.backoff.cap)

    def next_delay(self, attempts: int, *, idempotent: bool, response=None, error: Exception | None = None,
                   now: float | None = None) -> float | None:
        """After `attempts` attempts ended with `response` or `error`: seconds until the next one, or None when
        there is none (permanent, or no attempts left)."""
        if attempts >= self.max_attempts or not self.transient(idempotent=idempotent, response=response, error=error):
            return None
        return self.delay(attempts, response, now)


# The callers' parameters, read from settings at each use (tests and operators change them).

def sync_passthrough_policy(retries: int) -> RetryPolicy:
    """A sync call whose caller asked for `retries` more attempts (X-Passthrough-Retries)."""
    return RetryPolicy(Backoff(settings.PASSTHROUGH_RETRY_BASE_SECONDS), max_attempts=retries + 1)


def async_passthrough_policy() -> RetryPolicy:
    return RetryPolicy(Backoff(settings.ASYNC_PASSTHROUGH_RETRY_BASE_SECONDS),
                       max_attempts=settings.ASYNC_PASSTHROUGH_MAX_ATTEMPTS)


def sync_page_policy() -> RetryPolicy:
    return RetryPolicy(Backoff(settings.SYNC_RETRY_BASE_SECONDS, cap=settings.SYNC_RETRY_MAX_WAIT_SECONDS),
                       max_attempts=settings.SYNC_MAX_RETRIES + 1)


def webhook_policy() -> RetryPolicy:
    return RetryPolicy(Backoff(settings.WEBHOOK_RETRY_BASE_SECONDS), max_attempts=settings.WEBHOOK_MAX_ATTEMPTS)

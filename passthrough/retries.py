"""When a passthrough call is tried again, and after how long.

Background work (async passthrough) retries on its own: after 1 minute, then 2, 4... (ASYNC_PASSTHROUGH_RETRY_*),
with jitter, never sooner than the upstream's Retry-After, never past the request's global deadline. A sync call is
retried only when its caller asks with the `X-Passthrough-Retries` header, only for idempotent methods, and only
within the call's budget (SYNC_PASSTHROUGH_TIMEOUT). Every attempt sent is a row of the function-call log.

A call that was not idempotent is repeated only when the upstream said it did not act on it (429, 503): a network
error or a 500 may come after the upstream acted, and a second POST would act twice.
"""

import random

from connections import ratelimit
from integration_platform.errors import InvalidInput, UpstreamAnswerUnusable, UpstreamTimeout, UpstreamUnreachable
from integration_platform.validation import header_value

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
NOT_ACTED_ON = frozenset({429, 503})
RETRY_HEADER = "X-Passthrough-Retries"
MAX_REQUESTED_RETRIES = 3


def retryable(method: str, response=None, error: Exception | None = None) -> bool:
    """Whether sending the same call again may succeed and is safe: a network error, 429 or 5xx (see above)."""
    if method.upper() not in IDEMPOTENT_METHODS:
        return error is None and response.status in NOT_ACTED_ON
    if error is not None:
        return isinstance(error, (UpstreamUnreachable, UpstreamTimeout)) and not isinstance(error, UpstreamAnswerUnusable)
    return response.status == 429 or response.status >= 500


def retry_delay(attempts: int, base: float, response, now: float) -> float:
    """Seconds before the next attempt, after `attempts` of them: base × 2^(attempts − 1) plus up to 25 % jitter (so
    many retries spread out), or longer if the upstream asked (Retry-After, X-RateLimit-Reset)."""
    delay = base * 2 ** (attempts - 1) * random.uniform(1.0, 1.25)
    until = ratelimit.pause_until(response.status, response.headers, now) if response is not None else None
    return max(delay, until - now) if until is not None else delay


def requested_retries(request) -> int:
    """The retries a sync caller asked for in X-Passthrough-Retries (0 to 3; only idempotent methods use them)."""
    expected = f"Must be a whole number from 0 to {MAX_REQUESTED_RETRIES}."
    value = header_value(request, RETRY_HEADER, r"[0-9]{1,3}", expected)
    if value is None:
        return 0
    if int(value) > MAX_REQUESTED_RETRIES:
        raise InvalidInput("Invalid header.", [f"{RETRY_HEADER}: {expected}"])
    return int(value)

"""When a sync passthrough call is tried again: the caller's X-Passthrough-Retries.

Whether and when to retry is connections/retry_policy.py's rule, for every caller. A sync call is retried only when its
caller asks with the `X-Passthrough-Retries` header, only for idempotent methods, and only within the call's budget
(SYNC_PASSTHROUGH_TIMEOUT); background work (async passthrough) retries on its own (ASYNC_PASSTHROUGH_RETRY_*). Every
attempt sent is a row of the function-call log.
"""

from integration_platform.errors import InvalidInput
from integration_platform.validation import header_value

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_HEADER = "X-Passthrough-Retries"
MAX_REQUESTED_RETRIES = 3


def requested_retries(request) -> int:
    """The retries a sync caller asked for in X-Passthrough-Retries (0 to 3; only idempotent methods use them)."""
    expected = f"Must be a whole number from 0 to {MAX_REQUESTED_RETRIES}."
    value = header_value(request, RETRY_HEADER, r"[0-9]{1,3}", expected)
    if value is None:
        return 0
    if int(value) > MAX_REQUESTED_RETRIES:
        raise InvalidInput("Invalid header.", [f"{RETRY_HEADER}: {expected}"])
    return int(value)

"""Reading stored records: pages ordered by (modified_at, id) with keyset cursors.

A cursor names a position, not an offset, so a walk never skips a record while syncs write: a record changed
during the walk moves behind the cursor's position and shows up again, with its new data, further on.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.db.models import Q

from integration_platform.errors import InvalidInput
from integration_platform.validation import MAX_ID
from syncing.models import Record

FORWARD, BACKWARD = "n", "p"


@dataclass(frozen=True)
class RecordPage:
    records: list
    next_cursor: str | None
    previous_cursor: str | None


def encode_cursor(record: Record, direction: str) -> str:
    raw = json.dumps({"t": record.modified_at.isoformat(), "i": record.pk, "d": direction}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str):
    """(modified_at, id, direction) of a cursor we made; InvalidInput otherwise."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(data["t"])
        record_id, direction = data["i"], data["d"]
        if (moment.tzinfo is None or type(record_id) is not int or not 0 <= record_id <= MAX_ID
                or direction not in (FORWARD, BACKWARD)):
            raise ValueError
        moment = moment.astimezone(dt_timezone.utc)  # an edited offset could push it out of range: 400, not 500
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Invalid input.", ["cursor: Invalid cursor."]) from None
    return moment, record_id, direction


def records_page(connection, model: str, *, modified_after=None, include_deleted=False, cursor=None,
                 page_size=100) -> RecordPage:
    """One page of a connection's records of `model`: modified strictly after `modified_after`, deleted ones only
    if asked, oldest change first."""
    records = Record.objects.filter(connection=connection, model=model)
    if modified_after is not None:
        records = records.filter(modified_at__gt=modified_after)
    if not include_deleted:
        records = records.filter(remote_was_deleted=False)
    if cursor is None:
        page = list(records.order_by("modified_at", "pk")[:page_size + 1])
        more = len(page) > page_size
        page = page[:page_size]
        return RecordPage(page, encode_cursor(page[-1], FORWARD) if more else None, None)
    moment, record_id, direction = decode_cursor(cursor)
    if direction == FORWARD:
        after = Q(modified_at__gt=moment) | Q(modified_at=moment, pk__gt=record_id)
        page = list(records.filter(after).order_by("modified_at", "pk")[:page_size + 1])
        more = len(page) > page_size
        page = page[:page_size]
        return RecordPage(page, encode_cursor(page[-1], FORWARD) if more else None,
                          encode_cursor(page[0], BACKWARD) if page else None)
    before = Q(modified_at__lt=moment) | Q(modified_at=moment, pk__lt=record_id)
    page = list(records.filter(before).order_by("-modified_at", "-pk")[:page_size + 1])
    more = len(page) > page_size
    page = page[:page_size][::-1]
    return RecordPage(page, encode_cursor(page[-1], FORWARD) if page else None,
                      encode_cursor(page[0], BACKWARD) if more else None)

"""Wall-clock time as the service stores it: UTC, ISO 8601, milliseconds; wait and booking keys."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

#: Wait keys count milliseconds from here (2026-01-01T00:00:00Z); see
#: ``chalicelib.storage.ranks`` for why they must fit in 42 bits.
WAIT_KEY_EPOCH_MS = 1_767_225_600_000

#: A booking key is milliseconds since ``WAIT_KEY_EPOCH_MS`` times this, plus a random
#: tie-break below it (12 digits): 25 digits in all until 2165, well inside the 38
#: digits a DynamoDB number holds exactly.
BOOKING_KEY_TIE_BREAK = 10**12


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def wait_key_now() -> int:
    """The wait key for a join now: milliseconds since ``WAIT_KEY_EPOCH_MS``.

    Tests replace it to spread keys across the whole position index.
    """
    return time.time_ns() // 1_000_000 - WAIT_KEY_EPOCH_MS


def now_ms() -> int:
    """Unix time in milliseconds: what a sales window's bounds are compared with.

    Tests replace ``chalicelib.booking.now_ms`` / ``chalicelib.organiser.now_ms``
    to move through a window without waiting.
    """
    return time.time_ns() // 1_000_000


def ms_from_datetime(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime (sub-millisecond digits are dropped)."""
    return int(moment.timestamp() * 1000)


def iso_from_ms(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as every time the service answers is written."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def booking_key_now() -> int:
    """The key that places a ticket taken now in its event's booking order.

    Milliseconds first, so keys sort by when the ticket was taken (booked, or
    promoted from the waiting list); a random tie-break below, so that two
    tickets of one event taken in the same millisecond still get different keys
    (the same key twice has a chance of 10^-12 per pair) without any read or
    any shared counter: a booking stays one write. The tie-break is random, not
    derived from the email, so a key (which is a list's cursor, in URLs) tells
    nothing about who holds the ticket.
    """
    millis = time.time_ns() // 1_000_000 - WAIT_KEY_EPOCH_MS
    return millis * BOOKING_KEY_TIE_BREAK + secrets.randbelow(BOOKING_KEY_TIE_BREAK)

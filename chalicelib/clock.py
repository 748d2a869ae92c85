"""Wall-clock time as the service stores it: UTC, ISO 8601, milliseconds; and wait keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime

#: Wait keys count milliseconds from here (2026-01-01T00:00:00Z); see
#: ``chalicelib.storage.ranks`` for why they must fit in 42 bits.
WAIT_KEY_EPOCH_MS = 1_767_225_600_000


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def wait_key_now() -> int:
    """The wait key for a join now: milliseconds since ``WAIT_KEY_EPOCH_MS``.

    Tests replace it to spread keys across the whole position index.
    """
    return time.time_ns() // 1_000_000 - WAIT_KEY_EPOCH_MS

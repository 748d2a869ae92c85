"""Wall-clock time as the service stores it: UTC, ISO 8601, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")

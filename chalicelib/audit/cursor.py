"""Where one event's audit stands: small, plain JSON, carried from invocation to invocation.

A cursor is what a continuation message holds: the event, which read of it
(attempt) and which pass, DynamoDB's ``ExclusiveStartKey`` of the next page,
and each rule group's counters. Nothing in it grows with the event's size
(apart from a bounded handful of examples), so it fits an SQS message whatever
the event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.storage import StartKey

VERSION = 1


class BadCursor(ValueError):
    """A message that is not a cursor this code wrote: it fails (and goes to the DLQ)."""


@dataclass
class EventCursor:
    event_id: int
    #: 0 for the first read of the event; each re-read that confirms a violation adds 1.
    attempt: int = 0
    #: Index into ``runner.PASSES``, and the page of that pass to read next (None: its first).
    pass_index: int = 0
    start_key: StartKey | None = None
    #: Each rule group's state, by the group's name.
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Items of this attempt: all of them, and those of kinds no group checks, by kind.
    items: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    #: Pages read over all attempts, and invocations that ended with the event unfinished.
    pages: int = 0
    steps: int = 0

    @classmethod
    def start(cls, event_id: int) -> EventCursor:
        """The audit of ``event_id`` before anything is read (what the fan-out sends)."""
        return cls(event_id=event_id)

    def reread(self) -> EventCursor:
        """Start the event over, to confirm what the last read found (counts carried on)."""
        return EventCursor(
            event_id=self.event_id, attempt=self.attempt + 1, pages=self.pages, steps=self.steps
        )

    def to_json(self) -> dict[str, Any]:
        """The message body's JSON, versioned so a changed shape is refused, not misread."""
        return {"v": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> EventCursor:
        """Read a cursor back; anything else raises ``BadCursor``."""
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise BadCursor(f"not an audit cursor of version {VERSION}")
        fields = {k: v for k, v in data.items() if k != "v"}
        try:
            cursor = cls(**fields)
        except TypeError as error:
            raise BadCursor(str(error)) from error
        if not isinstance(cursor.event_id, int) or isinstance(cursor.event_id, bool):
            raise BadCursor("eventId must be an integer")
        return cursor

"""What one Lambda instance remembers between requests to save a DynamoDB request."""

from __future__ import annotations

import time
from collections import OrderedDict

from chalicelib.models import Event


class ContendedEvents:
    """The events whose cancellations this instance recently saw race for the head.

    A cancellation of such an event passes its ticket by count at once (one
    request, racing for nothing) instead of first reading the front of the list
    and trying to hand the ticket to the head by name, which concurrent
    cancellations would make it lose. Only a choice of which write to try first.
    """

    def __init__(self, seconds: float = 2.0, capacity: int = 1024) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, int], float] = OrderedDict()

    def recent(self, table: str, event_id: int) -> bool:
        seen = self._seen.get((table, event_id))
        return seen is not None and time.monotonic() - seen < self.seconds

    def remember(self, table: str, event_id: int) -> None:
        key = (table, event_id)
        self._seen[key] = time.monotonic()
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


class SoldOutHints:
    """The events this instance last saw sold out (per table), to skip a doomed booking attempt.

    Only a guess about which conditional write to try first: a booking for an
    event seen sold out goes straight to the waiting list, saving one DynamoDB
    request. If tickets came back meanwhile, the join's condition fails,
    DynamoDB returns the event, and the ticket is booked instead. Correctness
    never depends on it; bounded so a long-lived instance cannot grow it forever.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._events: OrderedDict[tuple[str, int], Event] = OrderedDict()

    def get(self, table: str, event_id: int) -> Event | None:
        return self._events.get((table, event_id))

    def remember(self, table: str, event: Event) -> None:
        key = (table, event.event_id)
        if event.available_tickets > 0:
            self._events.pop(key, None)
            return
        self._events[key] = event
        self._events.move_to_end(key)
        while len(self._events) > self.capacity:
            self._events.popitem(last=False)

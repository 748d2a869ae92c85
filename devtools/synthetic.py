"""Large events written straight into a table, with the service's own item mapping.

For the audit's tests and its scale measurement: booking 2,500 or 1,000,000
places through the API would take minutes to hours, and what the audit reads
is items, however they were written. Each item is the one the service writes
(``items.event_to_item``, ``items.place_to_item``, plus ``promotedFromWaitKey``
as a promotion sets it), in the state a real sale would leave:

* place ``i`` of ``n`` has the email ``p<event>-<i>@example.com`` (so sort-key
  order is ``i`` order), and every third place waits, the others are booked;
* wait keys *fall* with ``i``: the head of the waiting list (smallest key)
  is the last waiting place in sort-key order, so FIFO needs every page;
* every tenth booked place was promoted from a key below every waiting one;
* every booked place is in the attendee list, in sort-key order;
* the position index counts every waiting and promoted key, and the event's
  ``promotedCount`` the promoted places.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.clock import now_iso
from chalicelib.models import Event, Place, Status
from chalicelib.storage import items, ranks

#: Wait keys are ``WAIT_BASE + (n - i)``; promoted places waited with keys below it.
WAIT_BASE = 1_000_000
#: Booked place ``i`` is listed as an attendee under booking key ``BOOKING_BASE + i``.
BOOKING_BASE = 10**15


@dataclass(frozen=True)
class SyntheticEvent:
    event: Event
    places: list[Place]
    #: Every item written: the event, the places, the position index's nodes.
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> list[Place]:
        """The places on the waiting list."""
        return [p for p in self.places if p.status == Status.WAITLISTED]


def email(event_id: int, i: int) -> str:
    """Place ``i``'s email: zero-padded, so sort-key order is ``i`` order."""
    return f"p{event_id}-{i:07d}@example.com"


def synthetic_event(event_id: int, places: int) -> SyntheticEvent:
    """An event of ``places`` places, sold out, a third of them waiting (nothing written)."""
    made: list[Place] = []
    booked = 0
    for i in range(places):
        if i % 3 == 0:
            key = WAIT_BASE + (places - i)
            made.append(Place(event_id, email(event_id, i), Status.WAITLISTED, wait_key=key))
        else:
            promoted = booked + 1 if booked % 10 == 0 else None
            made.append(
                Place(
                    event_id,
                    email(event_id, i),
                    Status.BOOKED,
                    promoted_from_wait_key=promoted,
                    booking_key=BOOKING_BASE + i,
                )
            )
            booked += 1
    waiting = places - booked
    event = Event(
        event_id=event_id,
        name=f"synthetic {event_id}",
        total_tickets=booked,
        available_tickets=0,
        booked_tickets=booked,
        waiting_list_count=waiting,
        last_wait_key=WAIT_BASE + places,
        created_at=now_iso(),
        owner_id="synthetic",
        waiting_list_cap=max(waiting, 10_000),
        promoted_count=sum(1 for p in made if p.promoted_from_wait_key is not None),
    )
    return SyntheticEvent(event, made)


def event_items(synthetic: SyntheticEvent) -> list[dict[str, Any]]:
    """The event item, every place item and the position index, as the service would
    have written them (the index counts the waiting and the promoted keys)."""
    now = synthetic.event.created_at
    result: list[dict[str, Any]] = [dict(items.event_to_item(synthetic.event))]
    for place in synthetic.places:
        item: dict[str, Any] = dict(items.place_to_item(place, now))
        if place.promoted_from_wait_key is not None:
            item["promotedFromWaitKey"] = items.number(place.promoted_from_wait_key)
        result.append(item)
    counted = [p.wait_key or p.promoted_from_wait_key for p in synthetic.places]
    index = ranks.counts_for(key for key in counted if key is not None)
    event_id = synthetic.event.event_id
    result += [dict(items.rank_node_to_item(event_id, n, c)) for n, c in index.items()]
    return result


def batch_put(client: Any, table: str, to_write: Iterable[dict[str, Any]]) -> int:
    """``BatchWriteItem`` in 25s, resending what DynamoDB leaves unprocessed; items written."""
    written = 0
    batch: list[dict[str, Any]] = []
    for item in to_write:
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            written += _write(client, table, batch)
            batch = []
    if batch:
        written += _write(client, table, batch)
    return written


def _write(client: Any, table: str, batch: list[dict[str, Any]]) -> int:
    pending: dict[str, Any] | None = {table: batch}
    while pending:
        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None
    return len(batch)


def write_event(client: Any, table: str, event_id: int, places: int) -> SyntheticEvent:
    """Make and write one synthetic event; return what was written."""
    synthetic = synthetic_event(event_id, places)
    synthetic.items.extend(event_items(synthetic))
    batch_put(client, table, synthetic.items)
    return synthetic

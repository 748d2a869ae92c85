"""Domain events: what happened to a place or an event, derived from one stream record.

The booking paths write nothing for notifications: every change they make is
already a change of an item, and the table's stream carries each change with the
item before (``OldImage``) and after (``NewImage``). This module reads a record's
two images and names what happened:

======================  ===========================================================
type                    the change of the item
======================  ===========================================================
``place.booked``        a place is created holding a ticket
``place.waitlisted``    a place is created on the waiting list
``place.promoted``      a waiting place becomes a ticket (a cancellation or a raise)
``place.cancelled``     a ticket holder's place is deleted (the ticket is given up)
``place.left``          a waiting place is deleted (the person left the list)
``place.released``      the organiser cancelled the event: this place is released
``event.capacity_changed``  the event's ``totalTickets`` changed
``event.sales_closed``  the organiser closed sales (``salesClosed`` set)
``event.cancelled``     the organiser cancelled the event (``cancelledAt`` set)
======================  ===========================================================

A domain event's id is derived from the stream record's ``eventID`` (the same on
every redelivery of that record) and the type, so a record delivered twice gives
the same ids, and whatever acts on an id (an email, a webhook) can do it once.
Other items (position index nodes, organisers' items, the notifications' own
markers) give no domain events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.clock import iso_from_ms
from chalicelib.models import Status
from chalicelib.storage import schema

PLACE_BOOKED = "place.booked"
PLACE_WAITLISTED = "place.waitlisted"
PLACE_PROMOTED = "place.promoted"
PLACE_CANCELLED = "place.cancelled"
PLACE_LEFT = "place.left"
PLACE_RELEASED = "place.released"
EVENT_CAPACITY_CHANGED = "event.capacity_changed"
EVENT_SALES_CLOSED = "event.sales_closed"
EVENT_CANCELLED = "event.cancelled"

#: Every type, in the order of the table above (the webhook documentation lists them).
TYPES = (
    PLACE_BOOKED,
    PLACE_WAITLISTED,
    PLACE_PROMOTED,
    PLACE_CANCELLED,
    PLACE_LEFT,
    PLACE_RELEASED,
    EVENT_CAPACITY_CHANGED,
    EVENT_SALES_CLOSED,
    EVENT_CANCELLED,
)

#: The prefix of a domain event's id (``evt_`` and 32 hex digits).
ID_PREFIX = "evt_"


@dataclass(frozen=True)
class DomainEvent:
    """One thing that happened, with a stable id.

    ``email`` is the person concerned (None for an event-level change); ``data``
    holds the type's own fields (camelCase, as the API writes them).
    """

    id: str
    type: str
    event_id: int
    occurred_at: str
    email: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: The stream record's sequence number: one event's records share a shard, where a
    #: larger number (compared as a number) is a later change.
    sequence: str = ""

    def payload(self) -> dict[str, Any]:
        """The JSON body a webhook receives (Standard Webhooks' ``type``/``timestamp``/``data``)."""
        data: dict[str, Any] = {"eventId": self.event_id}
        if self.email is not None:
            data["userEmail"] = self.email
        if self.sequence:
            data["sequence"] = self.sequence
        return {"type": self.type, "timestamp": self.occurred_at, "data": {**data, **self.data}}


def domain_event_id(record_id: str, event_type: str) -> str:
    """A stable id for the ``event_type`` event of stream record ``record_id``."""
    digest = hashlib.sha256(f"{record_id}/{event_type}".encode()).hexdigest()
    return ID_PREFIX + digest[:32]


def from_stream_record(record: dict[str, Any]) -> list[DomainEvent]:
    """The domain events of one stream record (Lambda's shape: ``eventID``, ``eventName``,
    ``dynamodb.{Keys, OldImage, NewImage, ApproximateCreationDateTime}``)."""
    change = record.get("dynamodb") or {}
    keys = change.get("Keys") or {}
    partition = keys.get("PK", {}).get("S", "")
    sort_key = keys.get("SK", {}).get("S", "")
    if not partition.startswith(schema.EVENT_PREFIX):
        return []
    kind = schema.item_kind({"SK": {"S": sort_key}})
    old = change.get("OldImage") or {}
    new = change.get("NewImage") or {}
    found: list[tuple[str, dict[str, Any]]]
    email: str | None = None
    if kind == schema.PERSON_KIND:
        email = schema.email_of(sort_key)
        found = _place_changes(old, new)
    elif kind == schema.EVENT_KIND:
        found = _event_changes(old, new)
    else:
        return []
    if not found:
        return []
    event_id = schema.event_id_of(partition)
    stream_time = _occurred_at(change)
    sequence = str(change.get("SequenceNumber") or "")
    record_id = str(record.get("eventID") or sequence)
    return [
        DomainEvent(
            domain_event_id(record_id, kind_),
            kind_,
            event_id,
            _text(new, _TIME_OF.get(kind_, "")) or stream_time,
            email,
            data,
            sequence,
        )
        for kind_, data in found
    ]


#: The item's own record of when the change happened, to the millisecond (the stream's
#: time is to the second in AWS, and to the minute in DynamoDB Local); the others (a
#: deleted place, a capacity change, a close) have only the stream's.
_TIME_OF = {
    PLACE_BOOKED: "bookedAt",
    PLACE_WAITLISTED: "joinedAt",
    PLACE_PROMOTED: "promotedAt",
    PLACE_RELEASED: "releasedAt",
    EVENT_CANCELLED: "cancelledAt",
}


def _place_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    before = _text(old, "status")
    after = _text(new, "status")
    if not old and after == Status.BOOKED:
        return [(PLACE_BOOKED, {})]
    if not old and after == Status.WAITLISTED:
        # The key lets the handler read this join's position (and see if it still waits).
        return [(PLACE_WAITLISTED, {"waitKey": _number(new, "waitKey")})]
    if not new and before == Status.BOOKED:
        return [(PLACE_CANCELLED, {})]
    if not new and before == Status.WAITLISTED:
        return [(PLACE_LEFT, {})]
    if old and new and "releasedAt" in new and "releasedAt" not in old:
        if after == Status.WAITLISTED:
            # The key lets the handler tell a place promoted by count: it held a ticket.
            return [(PLACE_RELEASED, {"previousStatus": after, "waitKey": _number(new, "waitKey")})]
        return [(PLACE_RELEASED, {"previousStatus": after})]
    if before == Status.WAITLISTED and after == Status.BOOKED:
        return [(PLACE_PROMOTED, {})]
    return []


def _event_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if not old or not new:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    total_before = _number(old, "totalTickets")
    total_after = _number(new, "totalTickets")
    if total_before is not None and total_after is not None and total_before != total_after:
        found.append(
            (
                EVENT_CAPACITY_CHANGED,
                {"previousTotalTickets": total_before, "totalTickets": total_after},
            )
        )
    if _flag(new, "salesClosed") and not _flag(old, "salesClosed"):
        found.append((EVENT_SALES_CLOSED, {}))
    if "cancelledAt" in new and "cancelledAt" not in old:
        found.append((EVENT_CANCELLED, {}))
    return found


def _occurred_at(change: dict[str, Any]) -> str:
    """When the change was made, as the stream tells it (seconds; Lambda may give fractions)."""
    seconds = change.get("ApproximateCreationDateTime")
    if isinstance(seconds, int | float):
        return iso_from_ms(int(seconds * 1000))
    if isinstance(seconds, datetime):  # boto3's dynamodbstreams client gives a datetime
        return iso_from_ms(int(seconds.timestamp() * 1000))
    return iso_from_ms(0)


def _text(image: dict[str, Any], name: str) -> str | None:
    value = image.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _number(image: dict[str, Any], name: str) -> int | None:
    value = image.get(name)
    return int(value["N"]) if isinstance(value, dict) and "N" in value else None


def _flag(image: dict[str, Any], name: str) -> bool:
    value = image.get(name)
    return isinstance(value, dict) and value.get("BOOL") is True

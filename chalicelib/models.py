"""Plain data the domain works with; ``chalicelib.storage.items`` maps it to and from items."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


class Status(StrEnum):
    """Where a person stands in one event. A stored place is BOOKED or WAITLISTED; NONE
    only ever appears in a standing (no place held)."""

    BOOKED = "BOOKED"
    WAITLISTED = "WAITLISTED"
    NONE = "NONE"


@dataclass(frozen=True)
class Event:
    event_id: int
    name: str
    total_tickets: int
    available_tickets: int
    booked_tickets: int
    waiting_list_count: int
    #: Ordering key of the newest waiting-list entry (0 when none ever joined).
    #: New entries must sort after it, which makes the list strictly FIFO.
    last_wait_key: int
    created_at: str
    #: The organiser who created it (the token's ``sub``): its box office.
    owner_id: str | None = None
    #: At most this many people may wait (None: no cap, events made before caps).
    waiting_list_cap: int | None = None
    #: How many waiting people were ever promoted: always the front of the list, so
    #: a waiting person's position is the entries ahead in the position index
    #: minus this (see ``chalicelib.storage.ranks``).
    promoted_count: int = 0

    @property
    def waiting_list_full(self) -> bool:
        cap = self.waiting_list_cap
        return cap is not None and self.waiting_list_count >= cap

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "name": self.name,
            "totalTickets": self.total_tickets,
            "availableTickets": self.available_tickets,
            "bookedTickets": self.booked_tickets,
            "waitingListCount": self.waiting_list_count,
            **({"waitingListCap": self.waiting_list_cap} if self.waiting_list_cap else {}),
            "createdAt": self.created_at,
        }


@dataclass(frozen=True)
class Place:
    """One person's place in one event: a ticket (BOOKED) or a waiting-list entry.

    There is at most one per (event, email), which is what stops a person from
    holding two places.
    """

    event_id: int
    email: str
    status: Status
    #: Set only while WAITLISTED: the FIFO ordering key.
    wait_key: int | None = None
    request_key: str | None = None
    #: Set when a cancellation promoted this person: the key they waited with,
    #: kept so an audit can prove promotions followed the list's order.
    promoted_from_wait_key: int | None = None


@dataclass(frozen=True)
class BookingOutcome:
    status: Status  # BOOKED or WAITLISTED
    position: int | None = None
    replayed: bool = False


@dataclass(frozen=True)
class CancellationOutcome:
    previous_status: Status  # BOOKED or WAITLISTED
    promoted_waiting_person: bool
    #: What the answer to a cancellation says the place is now.
    status: Literal["CANCELLED"] = "CANCELLED"


@dataclass(frozen=True)
class Standing:
    event_id: int
    email: str
    status: Status
    position: int | None = None

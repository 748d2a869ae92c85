"""The booking invariants as rule groups: accumulators that read pages and judge at the end.

A rule group sees every item of the kinds it names (``kinds``: the sort key's
prefix, ``schema.item_kind``), in the order its pass reads them, one page at a
time. It keeps counters and extremes, never a list of places, so its state stays
a few hundred bytes however big the event: a plain dataclass of JSON values that
an audit carries from one invocation to the next. At the end, given the event
item as read, it lists what is wrong.

Checked as each item is read (folded into counters):
  * a place's status is BOOKED or WAITLISTED (``status``, first few kept as examples);
  * a waiting place has a ``waitKey``, a booked one has none (``waiting-key``);
  * a booked place is listed in its event's attendee list (``GSI1PK`` =
    ``ATTENDEES#<id>`` and a ``GSI1SK`` booking key), a waiting one carries
    neither attribute (``attendee-index``);
  * a place stored under an email that is not normalised is noted (at most
    ``MAX_UNNORMALISED``): it may be a second place of one person;
  * in ``waitKey`` order (the ``WaitingList`` index), two neighbours never
    share a key (``waiting-order``).

Checked at the end, from the totals and the event item:
  * counters: available + booked = total, none negative (``tickets-conserved``,
    ``counters-non-negative``); booked and waiting counters equal the places
    counted (``booked-count``, ``waiting-count``); the waiting-list cap
    (``waiting-list-cap``); nobody waits while tickets are free
    (``no-wait-while-available``);
  * order: no ``waitKey`` newer than the event's ``lastWaitKey``
    (``waiting-order``); nobody was promoted from behind someone still
    waiting: max ``promotedFromWaitKey`` < min waiting ``waitKey``
    (``fifo-promotion``);
  * one place per person: each noted email is looked up under its normalised
    key (``one-place-per-person``).

A new kind of item (``RANK#...``) gets checked by writing a ``RuleGroup`` with
``kinds = frozenset({"RANK"})`` and adding it to a pass in
``chalicelib.audit.runner.PASSES``; until then the runner counts those items as
skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, Self

from chalicelib.audit.findings import Finding
from chalicelib.models import Event, Place, Status
from chalicelib.storage import items
from chalicelib.storage.items import MalformedItem
from chalicelib.storage.schema import EVENT_KIND, PERSON_KIND

#: Malformed items are counted; this many distinct descriptions are kept for the report.
MAX_EXAMPLES = 5
#: Places under a non-normalised email (none in a healthy table) checked for a twin.
MAX_UNNORMALISED = 20

Item = dict[str, Any]


class Lookups(Protocol):
    """The point reads a rule group may ask for at the end (the runner provides them)."""

    def place_exists(self, email: str) -> bool: ...


@dataclass
class RuleGroup:
    """An accumulator over the items of some kinds; subclasses are dataclasses of JSON values."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]

    def observe(self, item: Item) -> None:
        """Fold one item (of one of ``kinds``) into the running state."""
        raise NotImplementedError

    def findings(self, event: Event, lookups: Lookups) -> list[Finding]:
        """What is wrong, now that every item has been seen."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """The running state, as JSON values (it travels in a queue message)."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        return cls(**state)


def normalised(email: str) -> str:
    """The audit's idea of one person: surrounding spaces and letter case do not count."""
    return email.strip().lower()


@dataclass
class EventRules(RuleGroup):
    """The event item: kept (a few fields) for the other groups, and its own counters checked."""

    name = "event"
    kinds = frozenset({EVENT_KIND})

    event: dict[str, Any] | None = None
    problem: str | None = None

    def observe(self, item: Item) -> None:
        try:
            self.event = asdict(items.event_from_item(item))
        except (KeyError, TypeError, ValueError) as error:
            self.problem = f"unreadable event item ({type(error).__name__}: {error})"

    def read(self) -> Event | None:
        """The event item as read (None: not read yet, missing, or unreadable)."""
        return Event(**self.event) if self.event is not None else None

    def findings(self, event: Event, lookups: Lookups) -> list[Finding]:
        found: list[Finding] = []
        if event.available_tickets + event.booked_tickets != event.total_tickets:
            found.append(
                (
                    "tickets-conserved",
                    f"available {event.available_tickets} + booked {event.booked_tickets}"
                    f" != total {event.total_tickets}",
                )
            )
        if min(event.available_tickets, event.booked_tickets, event.waiting_list_count) < 0:
            found.append(("counters-non-negative", f"counters of {event} went below zero"))
        return found


@dataclass
class PlaceRules(RuleGroup):
    """Every place, in sort-key order: counted against the event's counters and its order."""

    name = "places"
    kinds = frozenset({PERSON_KIND})

    booked: int = 0
    waiting: int = 0
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    waiting_without_key: int = 0
    booked_with_key: int = 0
    booked_unlisted: int = 0
    waiting_listed: int = 0
    min_wait_key: int | None = None
    max_wait_key: int | None = None
    max_promoted_from: int | None = None
    #: Normalised forms of emails stored un-normalised; beyond the cap, only counted.
    unnormalised: list[str] = field(default_factory=list)
    unnormalised_unchecked: int = 0
    #: Places marked released by a cancelled event's sweep.
    released: int = 0

    def observe(self, item: Item) -> None:
        try:
            place = items.place_from_item(item)
        except MalformedItem as error:
            self.malformed += 1
            example = str(error)
            if (
                len(self.malformed_examples) < MAX_EXAMPLES
                and example not in self.malformed_examples
            ):
                self.malformed_examples.append(example)
            return
        self._note_email(place.email)
        if place.released_at is not None:
            self.released += 1
        if place.status == Status.BOOKED:
            self._note_booked(place)
        else:
            self._note_waiting(place)
            self.waiting_listed += items.in_attendee_index(item)

    def _note_email(self, email: str) -> None:
        if email == normalised(email):
            return
        if len(self.unnormalised) < MAX_UNNORMALISED:
            self.unnormalised.append(normalised(email))
        else:
            self.unnormalised_unchecked += 1

    def _note_booked(self, place: Place) -> None:
        self.booked += 1
        if place.wait_key is not None:
            self.booked_with_key += 1
        if place.booking_key is None:
            self.booked_unlisted += 1
        if place.promoted_from_wait_key is not None:
            self.max_promoted_from = _max(self.max_promoted_from, place.promoted_from_wait_key)

    def _note_waiting(self, place: Place) -> None:
        self.waiting += 1
        if place.wait_key is None:
            self.waiting_without_key += 1
            return
        self.min_wait_key = _min(self.min_wait_key, place.wait_key)
        self.max_wait_key = _max(self.max_wait_key, place.wait_key)

    def findings(self, event: Event, lookups: Lookups) -> list[Finding]:
        return [
            *(("status", example) for example in self._malformed_details()),
            *self._counter_rules(event),
            *self._one_place_per_person(lookups),
            *self._order_rules(event),
            *self._release_rules(event),
            *self._attendee_index_rules(),
        ]

    def _release_rules(self, event: Event) -> list[Finding]:
        """Only a cancelled event's places are released, each counted once by its sweep."""
        if event.released_count != self.released:
            detail = f"counter {event.released_count} but {self.released} places marked released"
            return [("released-count", detail)]
        if self.released and not event.cancelled:
            return [("released-while-on", f"{self.released} places released, event not cancelled")]
        return []

    def _attendee_index_rules(self) -> list[Finding]:
        """Every ticket, and only a ticket, is in the attendee list (``EventsByNewest``)."""
        found: list[Finding] = []
        if self.booked_unlisted:
            found.append(
                (
                    "attendee-index",
                    f"{self.booked_unlisted} booked places are missing from the attendee list"
                    " (no GSI1PK/GSI1SK under their own event)",
                )
            )
        if self.waiting_listed:
            found.append(
                (
                    "attendee-index",
                    f"{self.waiting_listed} waiting places carry attendee-list keys",
                )
            )
        return found

    def _malformed_details(self) -> list[str]:
        details = list(self.malformed_examples)
        if self.malformed > len(details):
            details.append(f"{self.malformed} malformed places in all")
        return details

    def _counter_rules(self, event: Event) -> list[Finding]:
        """The counters agree with the places counted and respect the caps.

        The first ``pendingPromotions`` waiting places were promoted by count and
        not yet settled: they hold tickets (the position index's rules check that
        they are the front of the list).
        """
        found: list[Finding] = []
        pending = event.pending_promotions
        booked, waiting = self.booked + pending, self.waiting - pending
        if pending < 0 or pending > self.waiting:
            found.append(
                (
                    "pending-promotions",
                    f"{pending} promoted by count, but {self.waiting} waiting items",
                )
            )
        if event.booked_tickets != booked:
            found.append(
                (
                    "booked-count",
                    f"counter {event.booked_tickets} but {self.booked} booking items"
                    f" and {pending} promoted by count",
                )
            )
        if event.waiting_list_count != waiting:
            found.append(
                (
                    "waiting-count",
                    f"counter {event.waiting_list_count} but {self.waiting} waiting items,"
                    f" {pending} of them promoted by count",
                )
            )
        cap = event.waiting_list_cap
        if cap is not None and waiting > cap:
            found.append(("waiting-list-cap", f"{waiting} wait, past the cap of {cap}"))
        if event.available_tickets > 0 and waiting:
            found.append(
                (
                    "no-wait-while-available",
                    f"{event.available_tickets} tickets free while {waiting} people wait",
                )
            )
        return found

    def _one_place_per_person(self, lookups: Lookups) -> list[Finding]:
        """Keys are unique, so a second place of one person needs an un-normalised key."""
        found: list[Finding] = []
        noted = Counter(self.unnormalised)
        twice = [email for email, n in noted.items() if n + lookups.place_exists(email) > 1]
        if twice:
            found.append(("one-place-per-person", f"{len(twice)} emails hold more than one place"))
        if self.unnormalised_unchecked:
            found.append(
                (
                    "one-place-per-person",
                    f"{self.unnormalised_unchecked} more places are stored under an email that"
                    " is not normalised (not checked for a second place)",
                )
            )
        return found

    def _order_rules(self, event: Event) -> list[Finding]:
        """Wait keys not newer than the event's; promotions went first in, first out."""
        found: list[Finding] = []
        if self.waiting_without_key:
            found.append(("waiting-key", "a waiting place has no waitKey"))
        if self.max_wait_key is not None and self.max_wait_key > event.last_wait_key:
            found.append(("waiting-order", "a waitKey is newer than the event's lastWaitKey"))
        if self.booked_with_key:
            found.append(("waiting-key", "a booked place still carries a waitKey"))
        if (
            self.max_promoted_from is not None
            and self.min_wait_key is not None
            and self.max_promoted_from > self.min_wait_key
        ):
            found.append(
                (
                    "fifo-promotion",
                    "someone was promoted from the waiting list ahead of a person still waiting",
                )
            )
        return found


@dataclass
class WaitingListOrder(RuleGroup):
    """The ``WaitingList`` index in key order: a shared ``waitKey`` shows as equal neighbours."""

    name = "waiting-list"
    kinds = frozenset({PERSON_KIND})

    entries: int = 0
    last_key: int | None = None
    shared_keys: int = 0

    def observe(self, item: Item) -> None:
        key = int(item["waitKey"]["N"])
        if key == self.last_key:
            self.shared_keys += 1
        self.last_key = key
        self.entries += 1

    def findings(self, event: Event, lookups: Lookups) -> list[Finding]:
        if self.shared_keys:
            return [("waiting-order", "two waiting places share a waitKey")]
        return []


def _min(current: int | None, value: int) -> int:
    return value if current is None else min(current, value)


def _max(current: int | None, value: int) -> int:
    return value if current is None else max(current, value)

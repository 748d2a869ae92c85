"""Model-based test: random histories against the real service, checked by a plain model.

Hypothesis drives the Chalice app (through its test client, on DynamoDB Local:
single-threaded histories, so moto would be sound too, but Local is faster) with create / book /
retry-with-Idempotency-Key / cancel / status / standing calls, from a small pool
of emails written in varying case so that collisions are frequent. Every answer
is compared with ``BookingModel``, a few lines of obvious Python, and the
invariant audit of the event must be clean after every change.

A failure prints the shortest history that reproduces it and a
``@reproduce_failure`` blob; ``pytest --hypothesis-seed=N`` replays a run.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    multiple,
    rule,
    run_state_machine_as_test,
)

from chalicelib import booking, models, organiser
from chalicelib.audit import audit_events
from chalicelib.clock import iso_from_ms
from chalicelib.storage import TicketStore
from tests.conftest import Api, local_only

PEOPLE = ["ann", "bob", "cat", "dan", "eve"]
#: Two organisers: each is box office for their own events only.
ORGANISERS = ("org-one@example.com", "org-two@example.com")
EMAILS = st.sampled_from(PEOPLE).flatmap(
    lambda name: st.sampled_from(
        [f"{name}@example.com", f"{name.upper()}@Example.COM", f"  {name.title()}@example.com "]
    )
)


def canonical(email: str) -> str:
    return email.strip().lower()


@dataclass
class ModelEvent:
    total: int
    booked: set[str] = field(default_factory=set)
    waiting: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # email -> Idempotency-Key of its place
    opens: int | None = None  # the sales window, Unix ms
    closes: int | None = None
    closed: bool = False  # closed now by the organiser
    cancelled: bool = False
    released: set[str] = field(default_factory=set)  # who held a place when it was cancelled

    @property
    def available(self) -> int:
        return self.total - len(self.booked)

    def state(self, now: int) -> str:
        if self.cancelled:
            return "CANCELLED"
        if self.closed or (self.closes is not None and now >= self.closes):
            return "SALES_CLOSED"
        if self.opens is not None and now < self.opens:
            return "NOT_ON_SALE_YET"
        return "ON_SALE"


class BookingModel:
    """What the service must answer, in the simplest terms."""

    def __init__(self) -> None:
        self.events: dict[int, ModelEvent] = {}
        self.now = 0  # the sales clock, Unix ms (the machine moves it)

    def create(self, event_id: int, total: int) -> None:
        self.events[event_id] = ModelEvent(total)

    def book(self, event_id: int, email: str, key: str | None) -> tuple[int, dict[str, Any]]:
        event = self.events.get(event_id)
        if event is None:
            return 404, {}
        if event.cancelled:
            return 409, {}
        if email in event.booked or email in event.waiting:
            if key is not None and event.keys.get(email) == key:
                return self._replay(event, email)
            return 409, {}
        if event.state(self.now) != "ON_SALE":
            return 409, {}
        event.keys.pop(email, None)
        if key is not None:
            event.keys[email] = key
        if event.available > 0:
            event.booked.add(email)
            return 201, {"status": "BOOKED"}
        event.waiting.append(email)
        return 202, {"status": "WAITLISTED", "position": len(event.waiting)}

    def _replay(self, event: ModelEvent, email: str) -> tuple[int, dict[str, Any]]:
        if email in event.booked:
            return 201, {"status": "BOOKED", "idempotentReplay": True}
        position = event.waiting.index(email) + 1
        return 202, {"status": "WAITLISTED", "position": position, "idempotentReplay": True}

    def cancel(self, event_id: int, email: str) -> tuple[int, dict[str, Any]]:
        event = self.events.get(event_id)
        if event is None:
            return 404, {}
        if event.cancelled:
            return 409, {}
        if email in event.booked:
            event.booked.remove(email)
            event.keys.pop(email, None)
            promoted = bool(event.waiting)
            if promoted:
                event.booked.add(event.waiting.pop(0))
            return 200, {"previousStatus": "BOOKED", "ticketPassedToWaitingList": promoted}
        if email in event.waiting:
            event.waiting.remove(email)
            event.keys.pop(email, None)
            return 200, {"previousStatus": "WAITLISTED", "ticketPassedToWaitingList": False}
        return 404, {}

    def standing(self, event_id: int, email: str) -> tuple[int, dict[str, Any]]:
        event = self.events.get(event_id)
        if event is None:
            return 404, {}
        if email in event.released:
            return 200, {"status": "RELEASED", "position": None}
        if email in event.booked:
            return 200, {"status": "BOOKED", "position": None}
        if email in event.waiting:
            return 200, {"status": "WAITLISTED", "position": event.waiting.index(email) + 1}
        return 200, {"status": "NONE", "position": None}

    def status(self, event_id: int) -> tuple[int, dict[str, Any]]:
        event = self.events.get(event_id)
        if event is None:
            return 404, {}
        return 200, {
            "totalTickets": event.total,
            "availableTickets": event.available,
            "bookedTickets": len(event.booked),
            "waitingListCount": len(event.waiting),
            "state": event.state(self.now),
        }

    # -- the organiser's controls (the caller is the event's organiser) --

    def change(
        self,
        event_id: int,
        total: int | None,
        window: dict[str, int | None],
    ) -> tuple[int, dict[str, Any]]:
        event = self.events[event_id]
        if event.cancelled:
            return 409, {}
        opens = window.get("salesOpenAt", event.opens)
        closes = window.get("salesCloseAt", event.closes)
        if opens is not None and closes is not None and closes <= opens:
            return 422, {}
        new_total = event.total if total is None else total
        if new_total < len(event.booked):
            return 409, {}
        for _ in range(min(max(0, new_total - event.total), len(event.waiting))):
            event.booked.add(event.waiting.pop(0))
        event.total, event.opens, event.closes = new_total, opens, closes
        return self.status(event_id)

    def close(self, event_id: int) -> tuple[int, dict[str, Any]]:
        event = self.events[event_id]
        if event.cancelled:
            return 409, {}
        event.closed = True
        return self.status(event_id)

    def reopen(self, event_id: int) -> tuple[int, dict[str, Any]]:
        event = self.events[event_id]
        if event.cancelled:
            return 409, {}
        event.closed = False
        if event.closes is not None and event.closes <= self.now:
            event.closes = None
        if event.opens is not None and event.opens > self.now:
            event.opens = None
        return self.status(event_id)

    def cancel_event(self, event_id: int) -> tuple[int, dict[str, Any]]:
        event = self.events[event_id]
        if not event.cancelled:
            event.cancelled = True
            event.released = set(event.booked) | set(event.waiting)
        status, body = self.status(event_id)
        places = len(event.released)
        return status, {
            **body,
            "release": {"placesReleased": places, "placesToRelease": places, "complete": True},
        }


def assert_matches(reply: Any, expected: tuple[int, dict[str, Any]], what: str) -> None:
    status, fields = expected
    assert reply.status == status, f"{what}: HTTP {reply.status} {reply.body}, model says {status}"
    for name, value in fields.items():
        assert reply.body.get(name) == value, (
            f"{what}: {name}={reply.body.get(name)!r}, model {value!r}"
        )
    if status >= 400:
        assert set(reply.body) == {"Code", "Message"}, reply.body


#: When the histories' sales clock starts (Unix ms), and where window bounds fall from it.
SALES_START = 1_800_000_000_000
WINDOW_OFFSETS = [-120 * 60_000, -1, 0, 1, 30 * 60_000, 90 * 60_000]

#: Ids no event will ever have in the test's table.
UNKNOWN_EVENT_IDS = st.integers(min_value=10**15, max_value=10**15 + 5)


class BookingMachine(RuleBasedStateMachine):
    """One random history. All histories share one table (fast); each has its own events."""

    api: Api
    store: TicketStore
    events = Bundle("events")
    bookings = Bundle("bookings")  # (event id, email, Idempotency-Key) of answered bookings

    #: The wait-key clock (ms), moved only by ``time_passes``: so keys land in
    #: different nodes at every level of the position index, not only in one leaf.
    wait_clock: ClassVar[list[int]] = [1]
    #: The wall clock the sales window is judged by (Unix ms), moved by ``sales_time_passes``.
    sales_clock: ClassVar[list[int]] = [SALES_START]

    def __init__(self) -> None:
        super().__init__()
        self.wait_clock[0] = 1
        self.sales_clock[0] = SALES_START
        self.model = BookingModel()
        self.model.now = SALES_START
        self.last_event_id: int | None = None
        self.owners: dict[int, str] = {}

    def check_event(self, event_id: int) -> None:
        violations = audit_events(self.store, [event_id]).violations
        assert not violations, violations

    @rule(
        target=events,
        total=st.integers(min_value=1, max_value=3),
        organiser=st.sampled_from(ORGANISERS),
    )
    def create_event(self, total: int, organiser: str) -> int:
        reply = self.api.post(
            "/initialize",
            {"name": f"Event of {total}", "totalTickets": total},
            token=self.api.token(organiser, organiser=True),
        )
        assert reply.status == 201, reply
        self.owners[reply.body["eventId"]] = organiser
        event_id = reply.body["eventId"]
        if self.last_event_id is not None:
            assert event_id == self.last_event_id + 1  # sequential ids
        self.last_event_id = event_id
        assert reply.body["availableTickets"] == total
        self.model.create(event_id, total)
        return event_id

    @rule(target=bookings, event_id=events, email=EMAILS, with_key=st.booleans())
    def book(self, event_id: int, email: str, with_key: bool) -> Any:
        key = uuid.uuid4().hex if with_key else None
        headers = {"Idempotency-Key": key} if key else {}
        reply = self.api.book(event_id, email, **headers)
        assert_matches(reply, self.model.book(event_id, canonical(email), key), f"book {email}")
        self.check_event(event_id)
        if reply.status in (201, 202) and key:
            return (event_id, email, key)
        return multiple()

    @rule(event_id=events)
    def rush(self, event_id: int) -> None:
        """Everyone books at once (one after another here): waiting lists, often."""
        for name in PEOPLE:
            email = f"{name}@example.com"
            reply = self.api.book(event_id, email)
            assert_matches(reply, self.model.book(event_id, email, None), f"rush {email}")
            self.wait_clock[0] += 1
        self.check_event(event_id)

    @rule(
        ms=st.sampled_from([1, 127, 128, 2**14 - 1, 2**14, 2**21, 2**28, 2**35])
        | st.integers(1, 2**35)
    )
    def time_passes(self, ms: int) -> None:
        self.wait_clock[0] += ms

    @rule(booking=consumes(bookings))
    def retry_booking_with_the_same_key(self, booking: tuple[int, str, str]) -> None:
        event_id, email, key = booking
        reply = self.api.book(event_id, email, **{"Idempotency-Key": key})
        expected = self.model.book(event_id, canonical(email), key)
        assert_matches(reply, expected, f"retry {email}")
        self.check_event(event_id)

    @rule(event_id=events, email=EMAILS)
    def cancel(self, event_id: int, email: str) -> None:
        reply = self.api.cancel(event_id, email)
        assert_matches(reply, self.model.cancel(event_id, canonical(email)), f"cancel {email}")
        self.check_event(event_id)

    @rule(event_id=events, email=EMAILS)
    def standing(self, event_id: int, email: str) -> None:
        reply = self.api.standing(event_id, email)
        assert_matches(reply, self.model.standing(event_id, canonical(email)), "standing")

    @rule(
        event_id=events,
        email=EMAILS,
        organiser=st.sampled_from(ORGANISERS),
        action=st.sampled_from(["/book", "/cancel"]),
    )
    def box_office(self, event_id: int, email: str, organiser: str, action: str) -> None:
        """An organiser acts for someone: as that person on their own event, 403 elsewhere."""
        body = {"eventId": event_id, "userEmail": email}
        reply = self.api.post(action, body, token=self.api.token(organiser, organiser=True))
        if self.owners[event_id] != organiser:
            assert (reply.status, reply.body["Code"]) == (403, "ForbiddenError"), reply
        elif action == "/book":
            expected = self.model.book(event_id, canonical(email), None)
            assert_matches(reply, expected, f"box office books {email}")
        else:
            expected = self.model.cancel(event_id, canonical(email))
            assert_matches(reply, expected, f"box office cancels {email}")
        if reply.status < 300:
            assert reply.body["userEmail"] == canonical(email)  # acted for exactly that person
        self.check_event(event_id)

    @rule(
        event_id=events, caller=EMAILS, other=EMAILS, action=st.sampled_from(["/book", "/cancel"])
    )
    def acting_for_someone_else_is_refused(
        self, event_id: int, caller: str, other: str, action: str
    ) -> None:
        if canonical(caller) == canonical(other):
            return
        reply = self.api.post(
            action, {"eventId": event_id, "userEmail": other}, token=self.api.token(caller)
        )
        assert (reply.status, reply.body["Code"]) == (403, "ForbiddenError"), reply
        self.check_event(event_id)

    @rule(event_id=events)
    def status(self, event_id: int) -> None:
        reply = self.api.get(f"/status/{event_id}")
        assert_matches(reply, self.model.status(event_id), f"status {event_id}")

    @rule(event_id=UNKNOWN_EVENT_IDS, email=EMAILS, action=st.sampled_from(["book", "cancel"]))
    def unknown_event_is_404(self, event_id: int, email: str, action: str) -> None:
        reply = (
            self.api.book(event_id, email) if action == "book" else self.api.cancel(event_id, email)
        )
        assert reply.status == 404, reply
        assert reply.body["Code"] == "NotFoundError"
        assert self.api.get(f"/status/{event_id}").status == 404

    # -- the organiser's controls --

    def control(self, event_id: int, path: str, body: Any, method: str = "post") -> Any:
        token = self.api.token(self.owners[event_id], organiser=True)
        return self.api.send(method, f"/events/{event_id}{path}", body, token=token)

    @rule(
        event_id=events,
        action=st.sampled_from(["raise", "capacity", "window", "close", "reopen", "cancel"]),
        total=st.integers(min_value=1, max_value=6),
        extra=st.integers(min_value=1, max_value=4),
        opens=st.none() | st.sampled_from(WINDOW_OFFSETS),
        closes=st.none() | st.sampled_from(WINDOW_OFFSETS),
        which=st.sampled_from(["both", "salesOpenAt", "salesCloseAt"]),
        by_the_organiser=st.booleans() | st.just(True),
    )
    def organiser_acts(
        self,
        event_id: int,
        action: str,
        total: int,
        extra: int,
        opens: int | None,
        closes: int | None,
        which: str,
        by_the_organiser: bool,
    ) -> None:
        """One control (one rule for all, so that bookings keep their share of the steps)."""
        owner = self.owners[event_id]
        caller = owner if by_the_organiser else next(o for o in ORGANISERS if o != owner)
        token = self.api.token(caller, organiser=True)
        path, body, method = f"/events/{event_id}", None, "post"
        if action in ("raise", "capacity"):
            if action == "raise":  # from the current total: most often with people waiting
                total = self.model.events[event_id].total + extra
            body, method = {"totalTickets": total}, "patch"
            expected = lambda: self.model.change(event_id, total, {})  # noqa: E731
        elif action == "window":
            now = self.sales_clock[0]
            bounds = {
                "salesOpenAt": None if opens is None else now + opens,
                "salesCloseAt": None if closes is None else now + closes,
            }
            if which != "both":
                bounds = {which: bounds[which]}
            body = {name: None if ms is None else iso_from_ms(ms) for name, ms in bounds.items()}
            method = "patch"
            expected = lambda: self.model.change(event_id, None, bounds)  # noqa: E731
        else:
            path += f"/{action}"
            expected = {
                "close": lambda: self.model.close(event_id),
                "reopen": lambda: self.model.reopen(event_id),
                "cancel": lambda: self.model.cancel_event(event_id),
            }[action]
        reply = self.api.send(method, path, body, token=token)
        if by_the_organiser:
            assert_matches(reply, expected(), f"{action} {body}")
        else:
            assert (reply.status, reply.body["Code"]) == (403, "ForbiddenError"), reply
        self.check_event(event_id)

    @rule(event_id=events, extra=st.integers(min_value=1, max_value=4))
    def raise_capacity(self, event_id: int, extra: int) -> None:
        """Raising capacity, the control with the most to get wrong, has a rule of its own:
        the new tickets go to the waiting list first, in order, then to the pool."""
        total = self.model.events[event_id].total + extra
        reply = self.api.send(
            "patch",
            f"/events/{event_id}",
            {"totalTickets": total},
            token=self.api.token(self.owners[event_id], organiser=True),
        )
        assert_matches(reply, self.model.change(event_id, total, {}), f"raise to {total}")
        self.check_event(event_id)

    @rule(minutes=st.sampled_from([1, 30, 60, 120]))
    def sales_time_passes(self, minutes: int) -> None:
        self.sales_clock[0] += minutes * 60_000
        self.model.now = self.sales_clock[0]

    def teardown(self) -> None:
        report = audit_events(self.store, list(self.model.events))
        assert report.clean, report.to_json()


@pytest.mark.dynamodb_local
@local_only
def test_service_agrees_with_the_model_on_random_histories(
    api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(booking, "wait_key_now", lambda: BookingMachine.wait_clock[0])
    for module in (booking, models, organiser):
        monkeypatch.setattr(module, "now_ms", lambda: BookingMachine.sales_clock[0])
    # Raises of more than two promotions run in several transactions.
    monkeypatch.setattr(organiser, "PROMOTIONS_PER_TRANSACTION", 2)
    BookingMachine.api = api
    BookingMachine.store = store
    run_state_machine_as_test(
        BookingMachine,
        settings=settings(
            max_examples=int(os.environ.get("MODEL_EXAMPLES", "300")),
            stateful_step_count=25,
            deadline=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )

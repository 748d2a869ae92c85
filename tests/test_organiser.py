"""The organiser's controls through the API: capacity, the sales window, close, reopen, cancel.

Each test runs on moto and on DynamoDB Local (the ``api`` fixture), and ends
with the invariant audit of the event, so every control leaves a valid table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib import booking, models, organiser
from chalicelib.audit import audit_event
from chalicelib.clock import iso_from_ms, ms_from_datetime
from chalicelib.contract.operations import BY_ID
from chalicelib.identity.access import Caller
from chalicelib.storage import TicketStore
from tests.conftest import Api
from tests.test_validation import table_snapshot

#: The tests' "now" when they move the clock, in Unix ms.
NOON = ms_from_datetime(datetime(2027, 3, 1, 12, tzinfo=UTC))
HOUR = 3_600_000

CONTROLS = ["change_event", "close_sales", "reopen_sales", "cancel_event"]


def clock_at(monkeypatch: pytest.MonkeyPatch, ms: int) -> None:
    """The service's wall clock (bookings, reopen, the reported state) reads ``ms``."""
    for module in (booking, models, organiser):
        monkeypatch.setattr(module, "now_ms", lambda: ms)


def control(api: Api, operation_id: str, event_id: int, body: Any = None, **kw: Any) -> Any:
    operation = BY_ID[operation_id]
    path = operation.path.replace("{eventId}", str(event_id))
    if operation.method == "patch":
        return api.patch(path, body if body is not None else {}, **kw)
    return api.post(path, body if body is not None else {}, **kw)


def assert_clean(store: TicketStore, event_id: int) -> None:
    assert audit_event(store, event_id) == []


def fill(api: Api, event_id: int, people: list[str]) -> None:
    for email in people:
        assert api.book(event_id, email).status in (201, 202)


def standing(api: Api, event_id: int, email: str) -> tuple[str, int | None]:
    reply = api.standing(event_id, email)
    assert reply.status == 200, reply
    return reply.body["status"], reply.body["position"]


# -- who may -----------------------------------------------------------------------------------


@pytest.mark.parametrize("operation_id", CONTROLS)
def test_only_the_events_organiser_may_use_a_control(
    api: Api, store: TicketStore, operation_id: str
) -> None:
    event_id = api.create_event(2)
    body = {"totalTickets": 5} if operation_id == "change_event" else None
    before = table_snapshot(store)
    callers = {
        "no token": (None, 401, "UnauthorizedError"),
        "a person": (api.token("ann@example.com"), 403, "ForbiddenError"),
        "another organiser": (
            api.token("other@example.com", organiser=True),
            403,
            "ForbiddenError",
        ),
    }
    for who, (token, status, code) in callers.items():
        reply = control(api, operation_id, event_id, body, token=token)
        assert (reply.status, reply.body["Code"]) == (status, code), (who, reply)
    assert table_snapshot(store) == before  # nothing written for anyone refused
    assert control(api, operation_id, event_id, body).status in (200, 202)


@pytest.mark.parametrize("operation_id", ["close_sales", "reopen_sales", "cancel_event"])
def test_a_control_refuses_a_body_it_does_not_take(
    api: Api, store: TicketStore, operation_id: str
) -> None:
    """Close, reopen and cancel take no body: a field is refused as anywhere else, and
    nothing happens (an empty object, or no body at all, is fine)."""
    event_id = api.create_event(2)
    before = table_snapshot(store)
    reply = control(api, operation_id, event_id, {"unknownField": 1, "eventId": event_id + 1})
    assert reply.status == 400, reply
    assert reply.body["Message"] == "unknownField: this operation takes no body"
    assert table_snapshot(store) == before
    assert control(api, operation_id, event_id, {}).status == 200


def test_a_control_of_an_unknown_event_is_404(api: Api) -> None:
    for operation_id in CONTROLS:
        body = {"name": "x"} if operation_id == "change_event" else None
        reply = control(api, operation_id, 10**15, body)
        assert (reply.status, reply.body["Code"]) == (404, "NotFoundError"), operation_id


# -- capacity ----------------------------------------------------------------------------------


def test_raising_capacity_promotes_the_waiting_list_in_order_then_fills_the_pool(
    api: Api, store: TicketStore
) -> None:
    event_id = api.create_event(1)
    fill(api, event_id, ["holder@example.com", "w1@example.com", "w2@example.com"])
    reply = control(api, "change_event", event_id, {"totalTickets": 4})
    assert reply.status == 200, reply
    assert (reply.body["totalTickets"], reply.body["bookedTickets"]) == (4, 3)
    assert (reply.body["availableTickets"], reply.body["waitingListCount"]) == (1, 0)
    assert standing(api, event_id, "w1@example.com") == ("BOOKED", None)
    assert standing(api, event_id, "w2@example.com") == ("BOOKED", None)
    assert api.book(event_id, "new@example.com").status == 201  # the one left in the pool
    assert_clean(store, event_id)


def test_a_raise_smaller_than_the_list_promotes_only_the_front(
    api: Api, store: TicketStore
) -> None:
    event_id = api.create_event(1)
    people = ["holder@example.com"] + [f"w{n}@example.com" for n in range(1, 5)]
    fill(api, event_id, people)
    assert control(api, "change_event", event_id, {"totalTickets": 3}).status == 200
    assert [standing(api, event_id, p) for p in people[1:]] == [
        ("BOOKED", None),
        ("BOOKED", None),
        ("WAITLISTED", 1),
        ("WAITLISTED", 2),
    ]
    assert_clean(store, event_id)


def test_a_raise_larger_than_one_transaction_runs_in_several(
    api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(organiser, "PROMOTIONS_PER_TRANSACTION", 2)
    event_id = api.create_event(1)
    waiting = [f"w{n}@example.com" for n in range(1, 6)]
    fill(api, event_id, ["holder@example.com", *waiting])
    steps: list[int] = []
    original = TicketStore.change_event

    def counted(
        self: TicketStore, read: Any, change: Any, new_total: int, heads: Any, by_count: int = 0
    ) -> None:
        original(self, read, change, new_total, heads, by_count)
        steps.append(len(heads))

    monkeypatch.setattr(TicketStore, "change_event", counted)
    reply = control(api, "change_event", event_id, {"totalTickets": 8, "name": "Bigger"})
    assert reply.status == 200, reply
    assert reply.body["name"] == "Bigger"
    assert (reply.body["bookedTickets"], reply.body["availableTickets"]) == (6, 2)
    assert all(standing(api, event_id, p) == ("BOOKED", None) for p in waiting)
    assert steps == [2, 2, 1]  # 2 + 2 promoted; then the last one, and 2 to the pool
    assert_clean(store, event_id)


def test_a_raise_for_a_long_list_answers_202_and_the_same_patch_continues(
    api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More steps than one request runs (here 3 of 1 person): 202 after each 3, then 200.

    Races lost along the way do not count against the steps (a raise of 2,475+ people
    used to answer 503 "nothing was changed" after promoting most of them)."""
    monkeypatch.setattr(organiser, "PROMOTIONS_PER_TRANSACTION", 1)
    monkeypatch.setattr(organiser, "RAISE_STEPS_PER_REQUEST", 3)
    monkeypatch.setattr(organiser, "MAX_CHANGE_ROUNDS", 2)
    event_id = api.create_event(1)
    waiting = [f"w{n}@example.com" for n in range(1, 8)]
    fill(api, event_id, ["holder@example.com", *waiting])
    original = TicketStore.change_event
    calls = 0

    def every_other_loses(self: TicketStore, read: Any, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls % 2:  # a rival changes the settings first: this attempt loses
            original(self, read, models.EventChange(name=f"Rival {calls}"), read.total_tickets, [])
        original(self, read, *args)

    monkeypatch.setattr(TicketStore, "change_event", every_other_loses)
    answers = [control(api, "change_event", event_id, {"totalTickets": 10}) for _ in range(3)]
    assert [reply.status for reply in answers] == [202, 202, 200]
    assert [reply.body["bookedTickets"] for reply in answers] == [4, 7, 8]
    assert answers[-1].body["availableTickets"] == 2
    assert all(standing(api, event_id, p) == ("BOOKED", None) for p in waiting)
    assert_clean(store, event_id)


def test_a_raise_overtaken_midway_says_how_far_it_got(
    api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first step of a raise to 3 (renaming the event), a rival raises to 6: the
    rest of the raise would lower capacity, so it stops with a 409 that says what was
    applied, not one that reads as if nothing was."""
    monkeypatch.setattr(organiser, "PROMOTIONS_PER_TRANSACTION", 1)
    event_id = api.create_event(1)
    fill(api, event_id, ["holder@example.com", *(f"w{n}@example.com" for n in range(1, 6))])
    original = TicketStore.change_event
    rival_done = False

    def rival_after_the_first_step(self: TicketStore, *args: Any) -> None:
        nonlocal rival_done
        original(self, *args)
        if not rival_done:
            rival_done = True
            owner = booking.get_event(self, event_id).owner_id
            rival = Caller(subject=str(owner), email="org@example.com", is_organiser=True)
            with monkeypatch.context() as inner:
                inner.setattr(TicketStore, "change_event", original)
                organiser.change_event(self, rival, event_id, models.EventChange(total_tickets=6))

    monkeypatch.setattr(TicketStore, "change_event", rival_after_the_first_step)
    reply = control(api, "change_event", event_id, {"totalTickets": 3, "name": "Renamed"})
    assert reply.status == 409, reply
    assert reply.body["Message"].startswith(
        f"event {event_id}: this change stopped after 1 of its steps were applied"
    )
    assert api.get(f"/events/{event_id}").body["name"] == "Renamed"


def test_lowering_capacity_stops_at_the_number_booked(api: Api, store: TicketStore) -> None:
    event_id = api.create_event(5)
    fill(api, event_id, ["a@example.com", "b@example.com"])
    reply = control(api, "change_event", event_id, {"totalTickets": 1})
    assert (reply.status, reply.body["Code"]) == (409, "ConflictError")
    assert "has 2 tickets booked" in reply.body["Message"]
    reply = control(api, "change_event", event_id, {"totalTickets": 2})
    assert reply.status == 200
    assert (reply.body["totalTickets"], reply.body["availableTickets"]) == (2, 0)
    assert api.book(event_id, "c@example.com").status == 202  # sold out now: waits
    assert_clean(store, event_id)


def test_a_refused_change_writes_nothing_at_all(api: Api, store: TicketStore) -> None:
    event_id = api.create_event(2)
    fill(api, event_id, ["a@example.com", "b@example.com", "w@example.com"])
    before = table_snapshot(store)
    refused = [
        ({"name": "New name", "totalTickets": 1}, 409),  # below booked: the name stays too
        ({"waitingListCap": 1, "name": "x"}, 200),  # control: this one is allowed
    ]
    reply = control(api, "change_event", event_id, refused[0][0])
    assert reply.status == 409
    assert table_snapshot(store) == before
    assert control(api, "change_event", event_id, refused[1][0]).status == 200


def test_the_waiting_list_cap_cannot_drop_below_the_people_waiting(api: Api) -> None:
    event_id = api.create_event(1)
    fill(api, event_id, ["a@example.com", "w1@example.com", "w2@example.com"])
    reply = control(api, "change_event", event_id, {"waitingListCap": 1})
    assert (reply.status, reply.body["Code"]) == (409, "ConflictError")
    assert reply.body["Message"].startswith("waitingListCap: 2 people wait")
    reply = control(api, "change_event", event_id, {"waitingListCap": 2})
    assert (reply.status, reply.body["waitingListCap"]) == (200, 2)
    assert api.book(event_id, "w3@example.com").status == 409  # full now


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"colour": "red"}, "colour"),
        ({"totalTickets": 0}, "totalTickets"),
        ({"totalTickets": "5"}, "totalTickets"),
        ({"salesOpenAt": "2026-02-30T10:00:00Z"}, "salesOpenAt"),
        ({"salesOpenAt": "2026-12-01T10:00:00"}, "salesOpenAt"),
        ({"salesOpenAt": 1_800_000_000}, "salesOpenAt"),
        ({"name": None}, "name"),
    ],
)
def test_a_malformed_change_is_400_naming_the_field(
    api: Api, store: TicketStore, body: dict[str, Any], field: str
) -> None:
    event_id = api.create_event(2)
    before = table_snapshot(store)
    reply = control(api, "change_event", event_id, body)
    assert (reply.status, reply.body["Code"]) == (400, "BadRequestError"), reply
    assert reply.body["Message"].startswith(field), reply
    assert table_snapshot(store) == before


def test_a_window_that_closes_before_it_opens_is_422(api: Api) -> None:
    event_id = api.create_event(2)
    opens = "2027-03-01T12:00:00Z"
    assert control(api, "change_event", event_id, {"salesOpenAt": opens}).status == 200
    reply = control(api, "change_event", event_id, {"salesCloseAt": "2027-03-01T11:00:00Z"})
    assert (reply.status, reply.body["Code"]) == (422, "UnprocessableEntity"), reply
    assert reply.body["Message"].startswith("salesCloseAt: must be at least a millisecond later")
    reply = api.post(
        "/initialize",
        {"name": "x", "totalTickets": 1, "salesOpenAt": opens, "salesCloseAt": opens},
    )
    assert reply.status == 422


# -- the sales window, close and reopen ------------------------------------------------------


def test_bookings_follow_the_sales_window(
    api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = api.post(
        "/initialize",
        {
            "name": "Windowed",
            "totalTickets": 1,
            "salesOpenAt": iso_from_ms(NOON),
            "salesCloseAt": "2027-03-01T14:00:00+01:00",  # 13:00Z: an offset is honoured
        },
    )
    assert reply.status == 201, reply
    event_id = reply.body["eventId"]
    clock_at(monkeypatch, NOON - 1)
    assert api.status_of(event_id)["state"] == "NOT_ON_SALE_YET"
    early = api.book(event_id, "early@example.com")
    assert (early.status, early.body["Code"]) == (409, "ConflictError")
    assert early.body["Message"] == (
        f"event {event_id} is not on sale yet: sales open at 2027-03-01T12:00:00.000+00:00"
    )
    clock_at(monkeypatch, NOON)  # the opening is inclusive
    assert api.status_of(event_id)["state"] == "ON_SALE"
    assert api.book(event_id, "holder@example.com").status == 201
    assert api.book(event_id, "waiter@example.com").status == 202
    clock_at(monkeypatch, NOON + HOUR)  # the close is exclusive
    assert api.status_of(event_id)["state"] == "SALES_CLOSED"
    late = api.book(event_id, "late@example.com")
    assert (late.status, late.body["Message"]) == (
        409,
        f"sales closed for event {event_id}; cancelling is still possible",
    )
    cancelled = api.cancel(event_id, "holder@example.com")  # still allowed, still promotes
    assert (cancelled.status, cancelled.body["ticketPassedToWaitingList"]) == (200, True)
    assert standing(api, event_id, "waiter@example.com") == ("BOOKED", None)
    assert standing(api, event_id, "late@example.com") == ("NONE", None)
    assert_clean(store, event_id)


def test_close_and_reopen(api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clock_at(monkeypatch, NOON)
    event_id = api.create_event(2)
    api.book(event_id, "a@example.com")
    closed = control(api, "close_sales", event_id)
    assert (closed.status, closed.body["state"]) == (200, "SALES_CLOSED")
    assert api.book(event_id, "b@example.com").status == 409
    assert api.cancel(event_id, "a@example.com").status == 200  # cancelling still works
    reopened = control(api, "reopen_sales", event_id)
    assert (reopened.status, reopened.body["state"]) == (200, "ON_SALE")
    assert api.book(event_id, "b@example.com").status == 201
    # A window that has ended: reopening sells again now, so the past end goes.
    control(api, "change_event", event_id, {"salesCloseAt": iso_from_ms(NOON + HOUR)})
    clock_at(monkeypatch, NOON + 2 * HOUR)
    assert api.status_of(event_id)["state"] == "SALES_CLOSED"
    reopened = control(api, "reopen_sales", event_id)
    assert reopened.body["state"] == "ON_SALE"
    assert "salesCloseAt" not in reopened.body
    assert api.book(event_id, "c@example.com").status == 201
    assert_clean(store, event_id)


# -- cancelling the event ----------------------------------------------------------------------


def test_cancelling_an_event_releases_every_place_and_freezes_it(
    api: Api, store: TicketStore
) -> None:
    event_id = api.create_event(1)
    fill(api, event_id, ["holder@example.com", "w1@example.com", "w2@example.com"])
    reply = control(api, "cancel_event", event_id)
    assert reply.status == 200, reply
    assert reply.body["state"] == "CANCELLED"
    assert reply.body["release"] == {"placesReleased": 3, "placesToRelease": 3, "complete": True}
    assert api.status_of(event_id)["state"] == "CANCELLED"
    for email in ("holder@example.com", "w1@example.com", "w2@example.com"):
        assert standing(api, event_id, email) == ("RELEASED", None)
    assert standing(api, event_id, "stranger@example.com") == ("NONE", None)
    before = table_snapshot(store)
    for reply in (
        api.book(event_id, "new@example.com"),
        api.cancel(event_id, "holder@example.com"),
        api.cancel(event_id, "w2@example.com"),
        control(api, "change_event", event_id, {"totalTickets": 9}),
        control(api, "close_sales", event_id),
        control(api, "reopen_sales", event_id),
    ):
        assert (reply.status, reply.body["Code"]) == (409, "ConflictError"), reply
        assert "was cancelled" in reply.body["Message"]
    assert table_snapshot(store) == before  # read-only, and the records stay
    assert control(api, "cancel_event", event_id).status == 200  # again: nothing left to do
    places = store.event_partition(event_id).places
    assert len(places) == 3 and all(place.released_at for place in places)
    assert_clean(store, event_id)


def test_a_large_cancellation_resumes_across_calls(
    api: Api, store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(organiser, "RELEASES_PER_TRANSACTION", 2)
    monkeypatch.setattr(organiser, "RELEASE_STEPS_PER_REQUEST", 2)
    event_id = api.create_event(3)
    fill(api, event_id, [f"p{n}@example.com" for n in range(7)])
    progress = []
    for _ in range(3):
        reply = control(api, "cancel_event", event_id)
        progress.append((reply.status, reply.body["release"]["placesReleased"]))
        assert audit_event(store, event_id) == []  # valid between calls too
    assert progress == [(202, 4), (200, 7), (200, 7)]
    assert api.status_of(event_id)["release"]["complete"] is True


def test_the_organiser_list_is_unchanged_by_controls_of_another(api: Api) -> None:
    """Controls act on the event named in the path only."""
    mine = api.create_event(1)
    theirs = api.create_event(1, organiser="other@example.com")
    control(api, "cancel_event", mine)
    assert api.status_of(theirs)["state"] == "ON_SALE"

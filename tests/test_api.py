"""Every endpoint and status code, on moto and on DynamoDB Local (the ``api`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.audit import audit_event
from chalicelib.storage import TicketStore
from tests.conftest import Api


def test_initialize_returns_201_with_the_new_event(api: Api) -> None:
    reply = api.post("/initialize", {"name": "  Tech Conference 2025 ", "totalTickets": 100})
    assert reply.status == 201
    assert reply.body["name"] == "Tech Conference 2025"
    assert reply.body["totalTickets"] == 100
    assert reply.body["availableTickets"] == 100
    assert isinstance(reply.body["eventId"], int)


def test_event_ids_are_sequential_integers(api: Api) -> None:
    first = api.create_event(5)
    second = api.create_event(5)
    assert second == first + 1


def test_booking_a_free_ticket_returns_201(api: Api) -> None:
    event_id = api.create_event(2)
    reply = api.book(event_id, "user1@gmail.com")
    assert reply.status == 201
    assert reply.body["message"] == "Ticket booked successfully"
    assert reply.body["status"] == "BOOKED"
    assert api.status_of(event_id)["availableTickets"] == 1


def test_event_id_is_accepted_as_number_or_digit_string(api: Api) -> None:
    event_id = api.create_event(3)
    assert api.book(event_id, "a@example.com").status == 201
    assert api.book(str(event_id), "b@example.com").status == 201
    assert api.cancel(str(event_id), "a@example.com").status == 200


def test_sold_out_event_puts_people_on_the_waiting_list_in_order(api: Api) -> None:
    event_id = api.create_event(1)
    assert api.book(event_id, "first@example.com").status == 201
    second = api.book(event_id, "second@example.com")
    third = api.book(event_id, "third@example.com")
    assert second.status == 202
    assert second.body["message"] == "Event sold out, you're added to the waiting list"
    assert second.body["status"] == "WAITLISTED"
    assert (second.body["position"], third.body["position"]) == (1, 2)


def test_status_reports_every_counter(api: Api) -> None:
    created = api.post("/initialize", {"name": "Gig", "totalTickets": 2}).body
    event_id = created["eventId"]
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        api.book(event_id, email)
    assert api.status_of(event_id) == {
        "eventId": event_id,
        "name": "Gig",
        "totalTickets": 2,
        "availableTickets": 0,
        "bookedTickets": 2,
        "waitingListCount": 1,
        "waitingListCap": 10_000,
        "createdAt": created["createdAt"],
        "state": "ON_SALE",
    }
    assert datetime.fromisoformat(created["createdAt"]).tzinfo == UTC


@pytest.mark.parametrize("again", ["user1@gmail.com", "User1@Gmail.com ", " USER1@GMAIL.COM"])
def test_same_email_cannot_book_twice_whatever_the_case(api: Api, again: str) -> None:
    event_id = api.create_event(5)
    assert api.book(event_id, "user1@gmail.com").status == 201
    reply = api.book(event_id, again)
    assert reply.status == 409
    assert reply.body["Code"] == "ConflictError"
    assert api.status_of(event_id)["bookedTickets"] == 1


def test_waiting_person_cannot_join_twice(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "a@example.com")
    assert api.book(event_id, "b@example.com").status == 202
    reply = api.book(event_id, "B@example.com")
    assert reply.status == 409
    assert reply.body == {
        "Code": "ConflictError",
        "Message": f"this email already holds a place on the waiting list for event {event_id}",
    }
    assert api.status_of(event_id)["waitingListCount"] == 1


def test_cancel_returns_ticket_to_pool_when_nobody_waits(api: Api) -> None:
    event_id = api.create_event(2)
    api.book(event_id, "a@example.com")
    reply = api.cancel(event_id, "A@Example.com")
    assert reply.status == 200
    assert reply.body["message"] == "Your booking has been cancelled successfully"
    assert reply.body["ticketPassedToWaitingList"] is False
    status = api.status_of(event_id)
    assert (status["availableTickets"], status["bookedTickets"]) == (2, 0)


def test_cancel_gives_the_ticket_to_the_head_of_the_waiting_list(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    api.book(event_id, "next@example.com")
    api.book(event_id, "later@example.com")
    reply = api.cancel(event_id, "holder@example.com")
    assert reply.status == 200
    assert reply.body["ticketPassedToWaitingList"] is True
    assert api.standing(event_id, "next@example.com").body["status"] == "BOOKED"
    later = api.standing(event_id, "later@example.com").body
    assert (later["status"], later["position"]) == ("WAITLISTED", 1)
    status = api.status_of(event_id)
    assert (status["availableTickets"], status["bookedTickets"]) == (0, 1)
    assert status["waitingListCount"] == 1


def test_leaving_the_waiting_list_moves_everyone_behind_up(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    for email in ("w1@example.com", "w2@example.com", "w3@example.com"):
        api.book(event_id, email)
    reply = api.cancel(event_id, "w2@example.com")
    assert reply.status == 200
    assert reply.body["previousStatus"] == "WAITLISTED"
    assert reply.body["ticketPassedToWaitingList"] is False
    assert api.standing(event_id, "w3@example.com").body["position"] == 2
    assert api.standing(event_id, "w2@example.com").body["status"] == "NONE"
    assert api.status_of(event_id)["waitingListCount"] == 2
    # The head of the list is served first, and the ex-waiter can queue again at the back.
    api.cancel(event_id, "holder@example.com")
    assert api.standing(event_id, "w1@example.com").body["status"] == "BOOKED"
    assert api.book(event_id, "w2@example.com").body["position"] == 2


def test_the_head_of_the_list_can_leave_it(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    api.book(event_id, "w1@example.com")
    api.book(event_id, "w2@example.com")
    assert api.cancel(event_id, "w1@example.com").body["previousStatus"] == "WAITLISTED"
    api.cancel(event_id, "holder@example.com")
    assert api.standing(event_id, "w2@example.com").body["status"] == "BOOKED"


def test_cancel_by_someone_without_a_place_is_404_and_changes_nothing(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    before = api.status_of(event_id)
    reply = api.cancel(event_id, "stranger@example.com")
    assert reply.status == 404
    assert reply.body["Code"] == "NotFoundError"
    assert api.status_of(event_id) == before


def test_standing_reports_booked_waiting_and_none(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "a@example.com")
    api.book(event_id, "b@example.com")
    assert api.standing(event_id, "A@example.com ").body == {
        "eventId": event_id,
        "userEmail": "a@example.com",
        "status": "BOOKED",
        "position": None,
    }
    assert api.standing(event_id, "b@example.com").body["position"] == 1
    none = api.standing(event_id, "c@example.com")
    assert (none.status, none.body["status"], none.body["position"]) == (200, "NONE", None)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/book", {"eventId": 999, "userEmail": "a@example.com"}),
        ("post", "/cancel", {"eventId": 999, "userEmail": "a@example.com"}),
        ("get", "/status/999", None),
        ("get", "/events/999", None),
        ("get", "/events/999/standing", None),
    ],
)
def test_unknown_event_is_404_everywhere(api: Api, method: str, path: str, body: object) -> None:
    reply = api.post(path, body) if method == "post" else api.get(path)
    assert reply.status == 404
    assert reply.body == {"Code": "NotFoundError", "Message": "event 999 does not exist"}


def test_get_event_matches_status(api: Api) -> None:
    event_id = api.create_event(4)
    reply = api.get(f"/events/{event_id}")
    assert reply.status == 200
    assert reply.body == api.status_of(event_id)


def test_events_are_listed_newest_first_with_an_opaque_cursor(api: Api) -> None:
    ids = [api.create_event(1, name=f"event {n}") for n in range(5)]
    seen: list[int] = []
    path = "/events?limit=2"
    pages = 0
    while path:
        reply = api.get(path)
        assert reply.status == 200
        assert len(reply.body["events"]) <= 2
        seen += [e["eventId"] for e in reply.body["events"]]
        cursor = reply.body["nextCursor"]
        path = f"/events?limit=2&cursor={cursor}" if cursor else ""
        pages += 1
    assert seen == list(reversed(ids))
    assert pages == 3


def test_the_invariants_hold_after_a_mixed_history(api: Api, store: TicketStore) -> None:
    event_id = api.create_event(3)
    emails = [f"p{n}@example.com" for n in range(8)]
    for email in emails:
        api.book(event_id, email)
    for email in emails[::3]:
        api.cancel(event_id, email)
    assert audit_event(store, event_id) == []
    status = api.status_of(event_id)
    assert status["availableTickets"] + status["bookedTickets"] == status["totalTickets"]

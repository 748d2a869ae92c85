"""DynamoDB requests per operation stay at the floor the design allows.

The floor (see docs/data-model.md): a booking is one transaction; joining the
waiting list is one transaction plus one snapshot read (``TransactGetItems``)
that gives the position; a standing reads the place with its event (one
``TransactGetItems``: a place in a cancelled event reads RELEASED), and a waiting
person's then the snapshot; a cancellation reads the head of the waiting list and commits one
transaction. None of these grows with the list (``tests/test_waitlist_scale.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from chalicelib import booking
from chalicelib.audit import audit_event
from chalicelib.storage import TicketStore, ticket_store
from devtools.harness import RequestMeter
from tests.conftest import Api, local_only


@pytest.fixture
def requests_made(store: TicketStore) -> Iterator[RequestMeter]:
    yield RequestMeter().attach(ticket_store().client)


def measured(meter: RequestMeter, call: Callable[[], object]) -> dict[str, int]:
    meter.reset()
    call()
    return meter.snapshot()


def test_each_operation_makes_the_fewest_requests_the_design_allows(
    api: Api, requests_made: RequestMeter
) -> None:
    event_id = api.create_event(2)

    assert measured(requests_made, lambda: api.book(event_id, "a@example.com")) == {
        "TransactWriteItems": 1
    }
    api.book(event_id, "b@example.com")
    # The first sold-out answer is learnt from the failed booking's condition...
    assert measured(requests_made, lambda: api.book(event_id, "c@example.com")) == {
        "TransactWriteItems": 2,
        "TransactGetItems": 1,
    }
    # ...after which this instance goes straight to the waiting list.
    assert measured(requests_made, lambda: api.book(event_id, "d@example.com")) == {
        "TransactWriteItems": 1,
        "TransactGetItems": 1,
    }
    assert measured(requests_made, lambda: api.standing(event_id, "d@example.com")) == {
        "TransactGetItems": 2
    }
    assert measured(requests_made, lambda: api.standing(event_id, "a@example.com")) == {
        "TransactGetItems": 1
    }
    assert measured(requests_made, lambda: api.standing(event_id, "x@example.com")) == {
        "TransactGetItems": 1
    }
    # Cancelling with a promotion (a: c is promoted), leaving the list (d), and
    # returning a ticket to the pool (b): each reads the front of the list once
    # and commits one transaction.
    for email in ("a@example.com", "d@example.com", "b@example.com"):
        assert measured(requests_made, partial(api.cancel, event_id, email)) == {
            "Query": 1,
            "TransactWriteItems": 1,
        }, email
    assert api.status_of(event_id)["availableTickets"] == 1


@local_only
def test_only_ticket_writes_touch_the_attendee_index(api: Api) -> None:
    """The attendee list (``EventsByNewest``, ``ATTENDEES#<id>``) costs a booking no
    request, only one index entry; waiting-list joins and leaves never write it.

    The units are DynamoDB Local's own accounting of index writes inside a
    transaction (2 per entry written or deleted); docs/data-model.md gives AWS's.
    """
    client = ticket_store().client
    index_units: list[dict[str, float]] = []

    def ask(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "INDEXES"

    def note(parsed: dict[str, Any], **_: Any) -> None:
        if "ConsumedCapacity" not in parsed:
            return  # a refused attempt (the first booking of a sold-out event): not counted
        [consumed] = parsed["ConsumedCapacity"]
        indexes = {**consumed.get("GlobalSecondaryIndexes", {})}
        indexes |= consumed.get("LocalSecondaryIndexes", {})
        index_units.append({name: i["CapacityUnits"] for name, i in indexes.items()})

    client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", ask)
    client.meta.events.register("after-call.dynamodb.TransactWriteItems", note)
    event_id = api.create_event(1)

    def units(call: Callable[[], object]) -> dict[str, float]:
        index_units.clear()
        call()
        return index_units[-1]

    assert units(lambda: api.book(event_id, "a@example.com")) == {"EventsByNewest": 2.0}
    assert units(lambda: api.book(event_id, "b@example.com")) == {"WaitingList": 2.0}
    api.book(event_id, "c@example.com")
    # a's entry deleted, b's put: b's ticket is listed from its promotion on.
    assert units(lambda: api.cancel(event_id, "a@example.com")) == {
        "EventsByNewest": 4.0,
        "WaitingList": 2.0,
    }
    assert units(lambda: api.cancel(event_id, "c@example.com")) == {"WaitingList": 2.0}
    assert units(lambda: api.cancel(event_id, "b@example.com")) == {"EventsByNewest": 2.0}


def test_a_stale_sold_out_hint_still_books_a_freed_ticket(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "a@example.com")
    assert api.book(event_id, "b@example.com").status == 202  # this instance saw it sold out
    api.cancel(event_id, "b@example.com")
    api.cancel(event_id, "a@example.com")  # the ticket returns to the pool

    reply = api.book(event_id, "c@example.com")

    assert reply.status == 201
    assert reply.body["status"] == "BOOKED"
    status = api.status_of(event_id)
    assert (status["availableTickets"], status["waitingListCount"]) == (0, 0)


def test_joins_whose_keys_run_ahead_of_the_clock_still_cost_two_requests(
    api: Api, requests_made: RequestMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than one join a millisecond: keys run ahead of the wall clock. Each join's
    snapshot tells this instance the newest key, so the next join starts after it
    instead of losing a first attempt to its own previous join."""
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    monkeypatch.setattr(booking, "wait_key_now", lambda: 5)  # the clock stands still
    api.book(event_id, "w0@example.com")  # learns "sold out" and joins with key 5
    for n in range(1, 4):  # keys 6, 7, 8: all ahead of the clock
        assert measured(requests_made, lambda n=n: api.book(event_id, f"w{n}@example.com")) == {
            "TransactWriteItems": 1,
            "TransactGetItems": 1,
        }, n
    assert api.standing(event_id, "w3@example.com").body["position"] == 4


def test_a_cancellation_that_loses_the_head_promotes_the_next_in_line(
    api: Api, requests_made: RequestMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rivals promote w1 and w2 after a's read of the front: a's one failed attempt
    returns the event, whose lastPromotedKey sends it straight to w3, without a read."""
    event_id = api.create_event(3)
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        api.book(event_id, email)
    for n in range(1, 5):
        api.book(event_id, f"w{n}@example.com")
    store = ticket_store()
    read_heads = store.waitlist_heads

    def heads_then_two_rivals_cancel(event: int, limit: int) -> list:
        heads = read_heads(event, limit)
        monkeypatch.setattr(store, "waitlist_heads", read_heads)
        booking.cancel_booking(store, event, "b@example.com")  # promotes w1 meanwhile
        booking.cancel_booking(store, event, "c@example.com")  # and w2
        requests_made.reset()
        return heads  # now stale: w1 and w2 are no longer waiting

    monkeypatch.setattr(store, "waitlist_heads", heads_then_two_rivals_cancel)
    reply = api.cancel(event_id, "a@example.com")

    assert reply.status == 200 and reply.body["ticketPassedToWaitingList"] is True
    # One failed attempt on w1, then w3 at once: neither w2 tried nor the front read again.
    assert requests_made.snapshot() == {"TransactWriteItems": 2}
    for promoted in ("w1", "w2", "w3"):
        assert api.standing(event_id, f"{promoted}@example.com").body["status"] == "BOOKED"
    assert api.standing(event_id, "w4@example.com").body == {
        "eventId": event_id,
        "userEmail": "w4@example.com",
        "status": "WAITLISTED",
        "position": 1,
    }
    assert audit_event(store, event_id) == []


def test_reads_follow_every_page(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queries of a big event span pages (1 MB each in DynamoDB): none may be dropped."""
    first = api.create_event(1)
    for n in range(5):
        api.book(first, f"p{n}@example.com")
    second = api.create_event(3)
    store = ticket_store()
    query = store.client.query
    monkeypatch.setattr(store.client, "query", lambda **params: query(**{"Limit": 2, **params}))

    partition = store.event_partition(first)
    event, places = partition.event, partition.places
    assert event is not None and len(places) == 5
    assert api.standing(first, "p4@example.com").body["position"] == 4
    assert list(store.event_ids()) == [first, second]
    assert audit_event(store, first) == []


def test_the_nth_waiting_key_follows_pages(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """``waiting_key_at`` (the stream handler's "who held a ticket by count" at a
    cancellation) counts across pages: DynamoDB may end a page before its Limit."""
    event_id = api.create_event(1)
    for n in range(6):
        api.book(event_id, f"p{n}@example.com")
    store = ticket_store()
    waiting = [store.get_place(event_id, f"p{n}@example.com") for n in range(1, 6)]
    keys = [place.wait_key for place in waiting if place is not None]
    query = store.client.query
    monkeypatch.setattr(
        store.client,
        "query",
        lambda **params: query(**{**params, "Limit": min(2, params.get("Limit", 2))}),
    )
    assert [store.waiting_key_at(event_id, rank) for rank in range(1, 7)] == [*keys, None]

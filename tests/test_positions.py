"""Positions from the position index: exact after joins, leaves and promotions, and one
moment per answer even when a promotion races the read."""

from __future__ import annotations

import pytest

from chalicelib import booking
from chalicelib.audit import audit_event
from chalicelib.storage import ranks, ticket_store
from tests.conftest import Api


def positions(api: Api, event_id: int, emails: list[str]) -> list[object]:
    return [api.standing(event_id, email).body.get("position") for email in emails]


def test_positions_follow_joins_leaves_and_promotions(api: Api) -> None:
    event_id = api.create_event(2)
    api.book(event_id, "a@example.com")
    api.book(event_id, "b@example.com")
    waiters = [f"w{n}@example.com" for n in range(5)]
    assert [api.book(event_id, w).body["position"] for w in waiters] == [1, 2, 3, 4, 5]

    api.cancel(event_id, "w2@example.com")  # leaves from the middle
    api.cancel(event_id, "a@example.com")  # w0 is promoted
    api.cancel(event_id, "b@example.com")  # w1 is promoted

    assert positions(api, event_id, waiters) == [None, None, None, 1, 2]
    assert api.book(event_id, "late@example.com").body["position"] == 3
    assert audit_event(ticket_store(), event_id) == []


def test_keys_far_apart_use_every_level_of_the_index(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys that differ in every digit: each level's counts must be summed right."""
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    keys = iter([1, ranks.FANOUT, ranks.FANOUT**3 + 5, ranks.FANOUT**5 + 1, ranks.MAX_WAIT_KEY])
    monkeypatch.setattr(booking, "wait_key_now", lambda: next(keys))
    waiters = [f"w{n}@example.com" for n in range(5)]
    assert [api.book(event_id, w).body["position"] for w in waiters] == [1, 2, 3, 4, 5]
    api.cancel(event_id, "w3@example.com")
    api.cancel(event_id, "holder@example.com")  # w0 is promoted
    assert positions(api, event_id, waiters) == [None, 1, 2, None, 3]
    assert audit_event(ticket_store(), event_id) == []


def test_standing_racing_a_promotion_reads_one_moment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The place is read as waiting, then a promotion commits before the position is
    read: the answer must be BOOKED (the snapshot's moment), never position 0."""
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    api.book(event_id, "waiter@example.com")
    store = ticket_store()
    read_place = store.place_and_event

    def place_then_a_promotion(event: int, email: str) -> object:
        found = read_place(event, email)
        monkeypatch.setattr(store, "place_and_event", read_place)
        booking.cancel_booking(store, event, "holder@example.com")
        return found

    monkeypatch.setattr(store, "place_and_event", place_then_a_promotion)
    reply = api.standing(event_id, "waiter@example.com")
    assert reply.body["status"] == "BOOKED", reply.body
    assert reply.body["position"] is None


def test_a_join_racing_its_own_promotion_reads_booked(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    api.book(event_id, "seen-sold-out@example.com")  # this instance now joins directly
    api.cancel(event_id, "seen-sold-out@example.com")
    store = ticket_store()
    join = store.join_waitlist

    def join_then_promoted(*args: object, **kwargs: object) -> None:
        join(*args, **kwargs)  # type: ignore[arg-type]
        booking.cancel_booking(store, event_id, "holder@example.com")

    monkeypatch.setattr(store, "join_waitlist", join_then_promoted)
    reply = api.book(event_id, "waiter@example.com")
    assert (reply.status, reply.body["status"]) == (202, "BOOKED") or (
        reply.status == 201 and reply.body["status"] == "BOOKED"
    ), reply
    assert audit_event(store, event_id) == []

"""Every named condition part is needed: weaken any one, and a scenario breaks an invariant.

``chalicelib.storage.conditions.PARTS`` lists the clauses that enforce the
booking rules. For each part, and for each way of weakening it (dropping it;
swapping in its ``loosened`` variant, such as ``<=`` for ``<``), the guard test
runs the scenarios below against the weakened service on DynamoDB Local and
requires at least one of them to fail. A part added later with no scenario that
needs it fails that test, so no rule can go unguarded.

Races are forced deterministically: ``after_first_call`` runs a rival's request
between a read and the write that the read chose, which is exactly the window
each condition exists for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib import booking, organiser
from chalicelib.audit import audit_event
from chalicelib.errors import (
    AlreadyHoldsPlace,
    CapacityBelowBooked,
    CapBelowWaiting,
    DailyLimitReached,
    EventCancelled,
    InvalidWindow,
    NotOnSale,
    SalesClosed,
    WaitingListFull,
)
from chalicelib.hints import ContendedEvents, SoldOutHints
from chalicelib.identity.access import Caller
from chalicelib.models import EventChange, Status
from chalicelib.storage import TicketStore
from chalicelib.storage import conditions as condition_parts
from chalicelib.storage.schema import sequence_key
from tests.conftest import ORGANISER_ID

pytestmark = pytest.mark.dynamodb_local

Scenario = Callable[[TicketStore, pytest.MonkeyPatch], None]


@contextmanager
def after_first_call(store: TicketStore, method: str, rival: Callable[[], Any]) -> Iterator[None]:
    """The first call of ``store.<method>`` returns its answer, then ``rival`` runs at once.

    The rival acts after the read and before the write that the read decides:
    the read's answer is stale when the write is tried.
    """
    original = getattr(store, method)

    def read_then_rival(*args: Any, **kwargs: Any) -> Any:
        answer = original(*args, **kwargs)
        setattr(store, method, original)  # one shot: the rival and later rounds read normally
        rival()
        return answer

    setattr(store, method, read_then_rival)
    try:
        yield
    finally:
        setattr(store, method, original)


def standing(store: TicketStore, event_id: int, email: str) -> tuple[Status, int | None]:
    found = booking.get_standing(store, event_id, email)
    return found.status, found.position


def assert_clean(store: TicketStore, event_id: int) -> None:
    assert audit_event(store, event_id) == []


def new_event(store: TicketStore, tickets: int) -> int:
    booking.sold_out_hints = booking.SoldOutHints()  # no hint survives from another scenario
    return booking.create_event(store, "Guarded", tickets, owner_id=ORGANISER_ID).event_id


# -- scenarios ------------------------------------------------------------------------------


def same_email_twice_holds_one_place(store: TicketStore, _: pytest.MonkeyPatch) -> None:
    event_id = new_event(store, 1)
    for email in ("a@example.com", "w@example.com"):  # a ticket, then a waiting place
        booking.book_ticket(store, event_id, email)
        with pytest.raises(AlreadyHoldsPlace):
            booking.book_ticket(store, event_id, email)
    assert_clean(store, event_id)


def the_last_ticket_is_sold_once(store: TicketStore, _: pytest.MonkeyPatch) -> None:
    event_id = new_event(store, 1)
    assert booking.book_ticket(store, event_id, "a@example.com").status == Status.BOOKED
    assert booking.book_ticket(store, event_id, "b@example.com").status == Status.WAITLISTED
    assert_clean(store, event_id)


def a_stale_sold_out_hint_still_books_a_freed_ticket(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "a@example.com")
    booking.book_ticket(store, event_id, "b@example.com")  # this instance now thinks: sold out
    booking.cancel_booking(store, event_id, "b@example.com")
    booking.cancel_booking(store, event_id, "a@example.com")  # the ticket is free again
    assert booking.book_ticket(store, event_id, "c@example.com").status == Status.BOOKED
    assert_clean(store, event_id)


def a_lagging_clock_still_queues_in_order(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two joins compute the same key (a clock behind the stored keys, a stale hint):
    another instance saw the event sold out before w1 joined, and acts on that."""
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "holder@example.com")
    before_w1 = store.get_event(event_id)
    assert before_w1 is not None
    monkeypatch.setattr(booking, "wait_key_now", lambda: 5)
    booking.book_ticket(store, event_id, "w1@example.com")  # learns "sold out", joins with 5
    monkeypatch.setattr(booking, "sold_out_hints", SoldOutHints())  # the other instance...
    booking.sold_out_hints.remember(store.table_name, before_w1)  # ...whose lastWaitKey is old
    booking.book_ticket(store, event_id, "w2@example.com")  # so it computes 5 again
    assert standing(store, event_id, "w2@example.com") == (Status.WAITLISTED, 2)
    assert_clean(store, event_id)


def a_join_between_the_read_and_the_release_is_served(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    """The cancellation read an empty list; someone joined before it committed."""
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "holder@example.com")
    newcomer = "newcomer@example.com"
    with after_first_call(
        store, "waitlist_heads", lambda: booking.book_ticket(store, event_id, newcomer)
    ):
        outcome = booking.cancel_booking(store, event_id, "holder@example.com")
    assert outcome.promoted_waiting_person
    assert standing(store, event_id, newcomer) == (Status.BOOKED, None)
    assert_clean(store, event_id)


def a_waiting_person_beyond_the_heads_read_leaves(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    """Not among the heads read, so first tried as a ticket holder: that must fail."""
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "holder@example.com")
    waiting = [f"w{n:02d}@example.com" for n in range(booking.HEAD_WINDOW + 1)]
    for email in waiting:
        booking.book_ticket(store, event_id, email)
    outcome = booking.cancel_booking(store, event_id, waiting[-1])
    assert outcome.previous_status == Status.WAITLISTED
    assert standing(store, event_id, waiting[0]) == (Status.WAITLISTED, 1)
    assert_clean(store, event_id)


def a_leave_racing_a_promotion_gives_back_the_ticket(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    """W decides to leave the list; before it commits, W is promoted to a ticket."""
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "holder@example.com")
    booking.book_ticket(store, event_id, "w@example.com")
    with after_first_call(
        store,
        "waitlist_heads",
        lambda: booking.cancel_booking(store, event_id, "holder@example.com"),
    ):
        outcome = booking.cancel_booking(store, event_id, "w@example.com")
    assert outcome.previous_status == Status.BOOKED  # what W held when the cancel took effect
    assert store.get_event(event_id).available_tickets == 1  # type: ignore[union-attr]
    assert_clean(store, event_id)


def a_promotion_racing_a_rejoin_serves_the_list_in_order(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    """W1, the head that was read, leaves and joins again at the back before the promotion."""
    event_id = new_event(store, 1)
    for email in ("holder@example.com", "w1@example.com", "w2@example.com"):
        booking.book_ticket(store, event_id, email)

    def w1_leaves_and_rejoins() -> None:
        booking.cancel_booking(store, event_id, "w1@example.com")
        booking.book_ticket(store, event_id, "w1@example.com")

    with after_first_call(store, "waitlist_heads", w1_leaves_and_rejoins):
        booking.cancel_booking(store, event_id, "holder@example.com")
    assert standing(store, event_id, "w2@example.com") == (Status.BOOKED, None)
    assert standing(store, event_id, "w1@example.com") == (Status.WAITLISTED, 1)
    assert_clean(store, event_id)


def a_cancellation_that_lost_the_head_passes_its_ticket_by_count(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rivals promote W1 and W2 after A read the front: A's attempt on W1 fails,
    and A passes its ticket by count without trying anyone else by name (a lost race
    costs one request). W3 holds the ticket from then on, and settling writes it."""
    event_id = new_event(store, 3)
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        booking.book_ticket(store, event_id, email)
    for n in range(1, 5):
        booking.book_ticket(store, event_id, f"w{n}@example.com")
    tried: list[str] = []
    promote = store.cancel_and_promote

    def counted(event: int, email: str, head: Any) -> None:
        tried.append(head.email)
        promote(event, email, head)

    def two_rivals_cancel() -> None:
        booking.cancel_booking(store, event_id, "b@example.com")
        booking.cancel_booking(store, event_id, "c@example.com")

    monkeypatch.setattr(booking, "contended_events", ContendedEvents())
    with after_first_call(store, "waitlist_heads", two_rivals_cancel):
        monkeypatch.setattr(store, "cancel_and_promote", counted)
        outcome = booking.cancel_booking(store, event_id, "a@example.com")
    assert outcome.promoted_waiting_person and tried[-1:] == ["w1@example.com"]
    assert standing(store, event_id, "w3@example.com") == (Status.BOOKED, None)
    assert standing(store, event_id, "w4@example.com") == (Status.WAITLISTED, 1)
    assert_clean(store, event_id)
    assert booking.settle_promotions(store, event_id) == 1
    assert store.place_and_event(event_id, "w3@example.com")[0].status == Status.BOOKED  # type: ignore[union-attr]
    assert standing(store, event_id, "w4@example.com") == (Status.WAITLISTED, 1)
    assert_clean(store, event_id)


def contended(store: TicketStore, event_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """This instance has seen the event's cancellations race: the next pass by count."""
    hints = ContendedEvents()
    hints.remember(store.table_name, event_id)
    monkeypatch.setattr(booking, "contended_events", hints)


def a_pass_by_count_with_nobody_waiting_returns_the_ticket(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation in a race passes by count; with the list empty, the ticket must go
    back to the pool."""
    event_id = new_event(store, 2)
    for email in ("a@example.com", "b@example.com", "w@example.com"):
        booking.book_ticket(store, event_id, email)
    contended(store, event_id, monkeypatch)
    assert booking.cancel_booking(store, event_id, "a@example.com").promoted_waiting_person
    assert not booking.cancel_booking(store, event_id, "b@example.com").promoted_waiting_person
    assert store.get_event(event_id).available_tickets == 1  # type: ignore[union-attr]
    assert standing(store, event_id, "w@example.com") == (Status.BOOKED, None)
    assert_clean(store, event_id)


def a_person_promoted_by_count_cancels_a_ticket_not_a_place_in_line(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W1 holds a ticket by count, still stored as waiting: cancelling must give the
    ticket on (to W2), never leave the list with it."""
    event_id = new_event(store, 1)
    for email in ("a@example.com", "w1@example.com", "w2@example.com"):
        booking.book_ticket(store, event_id, email)
    contended(store, event_id, monkeypatch)
    booking.cancel_booking(store, event_id, "a@example.com")
    assert standing(store, event_id, "w1@example.com") == (Status.BOOKED, None)
    outcome = booking.cancel_booking(store, event_id, "w1@example.com")
    assert outcome.previous_status == Status.BOOKED and outcome.promoted_waiting_person
    assert standing(store, event_id, "w2@example.com") == (Status.BOOKED, None)
    assert_clean(store, event_id)


def two_settlements_at_once_write_only_the_promoted(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settlement reads one promotion pending; a rival settles it before the list is
    read, so the first entry read is W2, who waits: it must not be written as a ticket."""
    event_id = new_event(store, 1)
    for email in ("a@example.com", "w1@example.com", "w2@example.com"):
        booking.book_ticket(store, event_id, email)
    contended(store, event_id, monkeypatch)
    booking.cancel_booking(store, event_id, "a@example.com")
    with after_first_call(store, "get_event", lambda: booking.settle_promotions(store, event_id)):
        booking.settle_promotions(store, event_id)
    assert standing(store, event_id, "w1@example.com") == (Status.BOOKED, None)
    assert standing(store, event_id, "w2@example.com") == (Status.WAITLISTED, 1)
    assert_clean(store, event_id)


def a_lagging_id_sequence_never_overwrites_an_event(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    """After a restore, say, the sequence hands out an id that is already taken."""
    event_id = new_event(store, 2)
    booking.book_ticket(store, event_id, "a@example.com")
    store.client.update_item(
        TableName=store.table_name,
        Key=sequence_key(),
        UpdateExpression="SET lastValue = :behind",
        ExpressionAttributeValues={":behind": {"N": str(event_id - 1)}},
    )
    created = booking.create_event(store, "Later", 5, owner_id=ORGANISER_ID)
    assert created.event_id > event_id
    assert store.get_event(event_id).booked_tickets == 1  # type: ignore[union-attr]
    assert_clean(store, event_id)


def a_full_waiting_list_refuses_the_next_person(store: TicketStore, _: pytest.MonkeyPatch) -> None:
    booking.sold_out_hints = booking.SoldOutHints()
    event = booking.create_event(store, "Capped", 1, owner_id=ORGANISER_ID, waiting_list_cap=2)
    for email in ("holder@example.com", "w1@example.com", "w2@example.com"):
        booking.book_ticket(store, event.event_id, email)
    with pytest.raises(WaitingListFull):
        booking.book_ticket(store, event.event_id, "w3@example.com")
    assert standing(store, event.event_id, "w3@example.com") == (Status.NONE, None)
    assert_clean(store, event.event_id)


def an_organiser_creates_at_most_the_daily_cap(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(booking.DAILY_EVENT_CAP_ENV, "2")
    organiser = f"organiser-{uuid.uuid4().hex}"  # a fresh day's count for every run
    for _ in range(2):
        booking.create_event(store, "Allowed", 1, owner_id=organiser)
    with pytest.raises(DailyLimitReached):
        booking.create_event(store, "One too many", 1, owner_id=organiser)


# -- the organiser's controls -------------------------------------------------------------------

THE_ORGANISER = Caller(subject=ORGANISER_ID, email="organiser@example.com", is_organiser=True)
NOON = 1_800_000_000_000  # a fixed "now" for the window scenarios (Unix ms)


def nothing_changes_after_the_event_is_cancelled(store: TicketStore, _: pytest.MonkeyPatch) -> None:
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "holder@example.com")
    booking.book_ticket(store, event_id, "w@example.com")
    store.cancel_event(event_id)
    for act in (
        lambda: booking.book_ticket(store, event_id, "new@example.com"),
        lambda: booking.cancel_booking(store, event_id, "holder@example.com"),
        lambda: booking.cancel_booking(store, event_id, "w@example.com"),
    ):
        with pytest.raises(EventCancelled):
            act()
    assert_clean(store, event_id)


def windowed_event(store: TicketStore, opens: int | None, closes: int | None) -> int:
    booking.sold_out_hints = booking.SoldOutHints()
    return booking.create_event(
        store, "Windowed", 1, owner_id=ORGANISER_ID, sales_window=(opens, closes)
    ).event_id


def nobody_books_before_the_window_opens(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = windowed_event(store, NOON, None)
    monkeypatch.setattr(booking, "now_ms", lambda: NOON - 1)
    with pytest.raises(NotOnSale):
        booking.book_ticket(store, event_id, "early@example.com")


def a_booking_at_the_closing_moment_is_refused(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's own time is passed in: at the deadline it is too late."""
    event_id = windowed_event(store, None, NOON)
    monkeypatch.setattr(booking, "now_ms", lambda: NOON)
    with pytest.raises(SalesClosed):
        booking.book_ticket(store, event_id, "late@example.com")


def nobody_books_while_the_organiser_has_closed_sales(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    event_id = new_event(store, 2)
    booking.book_ticket(store, event_id, "a@example.com")  # this instance read it on sale
    organiser.close_sales(store, THE_ORGANISER, event_id)
    with pytest.raises(SalesClosed):
        booking.book_ticket(store, event_id, "b@example.com")


def two_raises_at_once_add_the_tickets_once(store: TicketStore, _: pytest.MonkeyPatch) -> None:
    event_id = new_event(store, 2)
    to_five = EventChange(total_tickets=5)
    with after_first_call(
        store, "get_event", lambda: organiser.change_event(store, THE_ORGANISER, event_id, to_five)
    ):
        organiser.change_event(store, THE_ORGANISER, event_id, to_five)
    assert store.get_event(event_id).total_tickets == 5  # type: ignore[union-attr]
    assert_clean(store, event_id)


def a_raise_by_count_never_promotes_more_than_wait(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a promotion by count still to settle, a raise promotes by count too. It read
    two people waiting; both leave before it commits: it must not promote anyone."""
    event_id = new_event(store, 1)
    for email in ("a@example.com", "w1@example.com", "w2@example.com", "w3@example.com"):
        booking.book_ticket(store, event_id, email)
    contended(store, event_id, monkeypatch)
    booking.cancel_booking(store, event_id, "a@example.com")  # W1 holds it by count

    def both_leave() -> None:
        booking.cancel_booking(store, event_id, "w2@example.com")
        booking.cancel_booking(store, event_id, "w3@example.com")

    with after_first_call(store, "get_event", both_leave):
        organiser.change_event(store, THE_ORGANISER, event_id, EventChange(total_tickets=2))
    event = store.get_event(event_id)
    assert event is not None and (event.total_tickets, event.available_tickets) == (2, 1)
    assert standing(store, event_id, "w1@example.com") == (Status.BOOKED, None)
    assert_clean(store, event_id)


def lowering_capacity_keeps_a_ticket_booked_meanwhile(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    event_id = new_event(store, 3)
    booking.book_ticket(store, event_id, "a@example.com")

    def two_more_book() -> None:
        booking.book_ticket(store, event_id, "b@example.com")
        booking.book_ticket(store, event_id, "c@example.com")

    with after_first_call(store, "get_event", two_more_book), pytest.raises(CapacityBelowBooked):
        organiser.change_event(store, THE_ORGANISER, event_id, EventChange(total_tickets=2))
    assert_clean(store, event_id)


def a_raise_racing_a_join_serves_the_newcomer_first(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    event_id = new_event(store, 1)
    booking.book_ticket(store, event_id, "holder@example.com")
    newcomer = "newcomer@example.com"
    with after_first_call(
        store, "get_event", lambda: booking.book_ticket(store, event_id, newcomer)
    ):
        organiser.change_event(store, THE_ORGANISER, event_id, EventChange(total_tickets=3))
    assert standing(store, event_id, newcomer) == (Status.BOOKED, None)
    assert_clean(store, event_id)


def a_cap_racing_a_join_never_ends_below_the_list(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    event_id = new_event(store, 1)
    for email in ("holder@example.com", "w1@example.com"):
        booking.book_ticket(store, event_id, email)
    with (
        after_first_call(
            store, "get_event", lambda: booking.book_ticket(store, event_id, "w2@example.com")
        ),
        pytest.raises(CapBelowWaiting),
    ):
        organiser.change_event(store, THE_ORGANISER, event_id, EventChange(waiting_list_cap=1))
    assert_clean(store, event_id)


def two_window_changes_at_once_never_make_an_empty_window(
    store: TicketStore, _: pytest.MonkeyPatch
) -> None:
    """Each bound is valid against what its change read; together they are not."""
    event_id = new_event(store, 1)
    opens_later = EventChange(sales_open_at=NOON + 1)
    with (
        after_first_call(
            store,
            "get_event",
            lambda: organiser.change_event(store, THE_ORGANISER, event_id, opens_later),
        ),
        pytest.raises(InvalidWindow),
    ):
        organiser.change_event(store, THE_ORGANISER, event_id, EventChange(sales_close_at=NOON))
    event = store.get_event(event_id)
    assert event is not None and event.sales_close_at is None


def two_sweeps_at_once_release_each_place_once(store: TicketStore, _: pytest.MonkeyPatch) -> None:
    event_id = new_event(store, 2)
    for email in ("a@example.com", "b@example.com", "w@example.com"):
        booking.book_ticket(store, event_id, email)
    store.cancel_event(event_id)
    with after_first_call(
        store, "places_after", lambda: organiser.release_places(store, event_id, 1)
    ):
        organiser.release_places(store, event_id, 1)
    assert_clean(store, event_id)


SCENARIOS: list[Scenario] = [
    same_email_twice_holds_one_place,
    the_last_ticket_is_sold_once,
    a_stale_sold_out_hint_still_books_a_freed_ticket,
    a_lagging_clock_still_queues_in_order,
    a_join_between_the_read_and_the_release_is_served,
    a_waiting_person_beyond_the_heads_read_leaves,
    a_leave_racing_a_promotion_gives_back_the_ticket,
    a_promotion_racing_a_rejoin_serves_the_list_in_order,
    a_cancellation_that_lost_the_head_passes_its_ticket_by_count,
    a_pass_by_count_with_nobody_waiting_returns_the_ticket,
    a_person_promoted_by_count_cancels_a_ticket_not_a_place_in_line,
    two_settlements_at_once_write_only_the_promoted,
    a_lagging_id_sequence_never_overwrites_an_event,
    a_full_waiting_list_refuses_the_next_person,
    an_organiser_creates_at_most_the_daily_cap,
    nothing_changes_after_the_event_is_cancelled,
    nobody_books_before_the_window_opens,
    a_booking_at_the_closing_moment_is_refused,
    nobody_books_while_the_organiser_has_closed_sales,
    two_raises_at_once_add_the_tickets_once,
    a_raise_by_count_never_promotes_more_than_wait,
    lowering_capacity_keeps_a_ticket_booked_meanwhile,
    a_raise_racing_a_join_serves_the_newcomer_first,
    a_cap_racing_a_join_never_ends_below_the_list,
    two_window_changes_at_once_never_make_an_empty_window,
    two_sweeps_at_once_release_each_place_once,
]

WEAKENINGS = [
    (name, how)
    for name, part in condition_parts.PARTS.items()
    for how in ("drop", "loosen")
    if how == "drop" or part.loosened is not None
]


def first_broken_scenario(store: TicketStore) -> str | None:
    """Run every scenario; the name of the first whose assertions fail, if any."""
    for scenario in SCENARIOS:
        with pytest.MonkeyPatch.context() as patch:
            try:
                scenario(store, patch)
            except (AssertionError, pytest.fail.Exception):
                return scenario.__name__
    return None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_each_scenario_holds_with_the_real_conditions(
    local_store: TicketStore, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(local_store, monkeypatch)


@pytest.mark.parametrize(("part", "how"), WEAKENINGS, ids=[f"{n}-{h}" for n, h in WEAKENINGS])
def test_weakening_any_condition_part_breaks_a_scenario(
    local_store: TicketStore, monkeypatch: pytest.MonkeyPatch, part: str, how: str
) -> None:
    condition = condition_parts.PARTS[part]
    weaker = "" if how == "drop" else condition.loosened
    monkeypatch.setattr(condition, "expression", weaker)

    broken = first_broken_scenario(local_store)

    assert broken is not None, f"no scenario needs {part} ({how}): {condition.guards}"
    print(f"\n{part} ({how}) -> broke {broken}")

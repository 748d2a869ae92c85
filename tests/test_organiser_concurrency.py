"""The organiser's controls racing the crowd on DynamoDB Local, then every invariant read back.

Capacity raises (several transactions each) and lowers race bookings, joins,
cancellations and leaves; status readers check, at every read, the invariants
each single transaction must keep. Then the table is audited and every
answer is held against it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from chalicelib import booking, organiser
from chalicelib.audit import audit_event
from chalicelib.errors import (
    AlreadyHoldsPlace,
    CapacityBelowBooked,
    ChangeInterrupted,
    EventCancelled,
    NoPlaceHeld,
    ServiceBusy,
)
from chalicelib.identity.access import Caller
from chalicelib.models import EventChange, Status
from chalicelib.storage import TicketStore
from tests.conftest import ORGANISER_ID
from tests.test_concurrency import Ledger, assert_consistent, book, cancel, run_together

pytestmark = pytest.mark.dynamodb_local

THE_ORGANISER = Caller(subject=ORGANISER_ID, email="organiser@example.com", is_organiser=True)


def test_capacity_changes_racing_bookings_and_cancellations_keep_every_invariant(
    local_store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(organiser, "PROMOTIONS_PER_TRANSACTION", 3)  # raises span transactions
    event_id = booking.create_event(local_store, "Gig", 10, owner_id=ORGANISER_ID).event_id
    ledger = Ledger()
    first_wave = [f"a{n:02d}@example.com" for n in range(30)]
    for email in first_wave:  # 10 booked, 20 waiting, in this order
        book(ledger, local_store, event_id, email)
    rng = random.Random(7)
    jobs: list[tuple[str, object]] = [("cancel", e) for e in rng.sample(first_wave, 12)]
    jobs += [("book", f"b{n:02d}@example.com") for n in range(12)]
    jobs += [("capacity", total) for total in (4, 8, 12, 16, 20, 25, 30, 14, 9, 22)]
    jobs += [("read", n) for n in range(4)]
    rng.shuffle(jobs)
    outcomes: Counter[str] = Counter()
    granted: set[int] = set()
    broken: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def change(store: TicketStore, total: int) -> None:
        try:
            organiser.change_event(store, THE_ORGANISER, event_id, EventChange(total_tickets=total))
            outcome = "capacity set"
            with lock:
                granted.add(total)
        except CapacityBelowBooked:
            outcome = "capacity refused: below booked"
        except ChangeInterrupted as interrupted:  # overtaken midway: its steps stay applied
            outcome = "capacity interrupted midway (409)"
            with lock:
                granted.add(interrupted.total)
        except ServiceBusy:
            outcome = "capacity gave up (503)"
        with lock:
            outcomes[outcome] += 1

    def read(store: TicketStore) -> None:
        while not done.is_set():
            seen = booking.get_event(store, event_id)
            if seen.available_tickets + seen.booked_tickets != seen.total_tickets:
                broken.append(f"tickets not conserved: {seen}")
            if seen.available_tickets > 0 and seen.waiting_list_count > 0:
                broken.append(f"a ticket free while people wait: {seen}")
            if seen.total_tickets < seen.booked_tickets or seen.available_tickets < 0:
                broken.append(f"capacity below the tickets booked: {seen}")
            time.sleep(0.005)

    def job(i: int, store: TicketStore) -> None:
        action, value = jobs[i]
        if action == "cancel":
            cancel(ledger, store, event_id, str(value))
        elif action == "book":
            book(ledger, store, event_id, str(value))
        elif action == "capacity":
            change(store, int(str(value)))
        else:
            read(store)

    def last_job_ends(i: int, store: TicketStore) -> None:
        try:
            job(i, store)
        finally:
            if jobs[i][0] != "read":
                with lock:
                    outcomes["jobs done"] += 1
                    if outcomes["jobs done"] == len(jobs) - 4:
                        done.set()

    started = time.perf_counter()
    run_together(len(jobs), last_job_ends, local_store)
    elapsed = time.perf_counter() - started

    event = local_store.get_event(event_id)
    assert event is not None
    print(
        f"\n{len(jobs)} clients in {elapsed:.2f}s: {dict(outcomes)}; final total"
        f" {event.total_tickets}, booked {event.booked_tickets}, waiting"
        f" {event.waiting_list_count}, promoted from the list {event.promoted_count}"
    )
    assert broken == []
    assert_consistent(local_store, event_id, ledger, event.total_tickets)
    assert event.total_tickets in granted | {
        10
    }  # the last step to commit: whole, or as far as it got
    assert outcomes["capacity set"] >= 1
    places = local_store.event_partition(event_id).places
    # First in, first out across raises and cancellations: nobody who joined later
    # holds a ticket while someone who joined earlier still waits (the audit's
    # fifo rule, here by person: every first-wave waiter joined before b*).
    waiting_first_wave = [p for p in places if p.status == Status.WAITLISTED and p.email < "b"]
    booked_newcomers = [p for p in places if p.status == Status.BOOKED and p.email >= "b"]
    assert not (waiting_first_wave and booked_newcomers)


def test_cancelling_an_event_during_a_rush_freezes_every_place(local_store: TicketStore) -> None:
    event_id = booking.create_event(local_store, "Gig", 5, owner_id=ORGANISER_ID).event_id
    succeeded: dict[str, str] = {}
    refused: list[str] = []
    lock = threading.Lock()

    def job(i: int, store: TicketStore) -> None:
        if i == 20:
            organiser.cancel_event(store, THE_ORGANISER, event_id)
            return
        email = f"fan{i:02d}@example.com"
        try:
            outcome = booking.book_ticket(store, event_id, email)
            with lock:
                succeeded[email] = outcome.status
            if i % 3 == 0:
                booking.cancel_booking(store, event_id, email)
                with lock:
                    succeeded[email] = "CANCELLED"
        except (EventCancelled, AlreadyHoldsPlace, NoPlaceHeld):
            with lock:
                refused.append(email)

    run_together(40, job, local_store)
    organiser.cancel_event(local_store, THE_ORGANISER, event_id)  # finish the release if need be
    assert audit_event(local_store, event_id) == []
    event = local_store.get_event(event_id)
    assert event is not None and event.cancelled
    places = {p.email: p for p in local_store.event_partition(event_id).places}
    print(
        f"\nrush of 39 with a cancellation: {len(places)} places frozen and released,"
        f" {len(refused)} refused after it"
    )
    # Every place left is released, and is one a person was told they have.
    assert all(place.released_at is not None for place in places.values())
    assert event.released_count == len(places)
    for email in places:
        assert succeeded.get(email) in (Status.BOOKED, Status.WAITLISTED), email
    for email, told in succeeded.items():
        if told == "CANCELLED":
            assert email not in places, f"{email} cancelled but still holds a place"

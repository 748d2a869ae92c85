"""Many clients at once against DynamoDB Local, then every invariant read back from the table.

moto is not thread-safe (it oversells under threads), so these run on DynamoDB
Local only. Each client has its own boto3 client, as separate Lambda instances
would.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from chalicelib import booking
from chalicelib.audit import audit_event
from chalicelib.errors import AlreadyHoldsPlace, NoPlaceHeld
from chalicelib.models import Status
from chalicelib.storage import TicketStore, make_client
from devtools.dynamodb_local import DynamoDBLocal
from tests.conftest import ORGANISER_ID

pytestmark = pytest.mark.dynamodb_local


@dataclass
class Ledger:
    """What each person was told, in the order the answers arrived."""

    told: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, email: str, answer: str) -> None:
        with self.lock:
            self.told.setdefault(email, []).append(answer)


def run_together(workers: int, job: Callable[[int, TicketStore], None], store: TicketStore):
    """Run ``job(i, own_store)`` on ``workers`` threads released at the same instant."""
    endpoint = store.client.meta.endpoint_url
    stores = [TicketStore(make_client(endpoint), store.table_name) for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def start(i: int) -> None:
        barrier.wait()
        job(i, stores[i])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(start, i) for i in range(workers)]:
            future.result()


def book(ledger: Ledger, store: TicketStore, event_id: int, email: str) -> None:
    try:
        outcome = booking.book_ticket(store, event_id, email)
        ledger.record(email, outcome.status)
    except AlreadyHoldsPlace:
        ledger.record(email, "CONFLICT")


def cancel(ledger: Ledger, store: TicketStore, event_id: int, email: str) -> None:
    try:
        outcome = booking.cancel_booking(store, event_id, email)
        ledger.record(email, f"CANCELLED_{outcome.previous_status}")
    except NoPlaceHeld:
        ledger.record(email, "NO_PLACE")


def assert_consistent(store: TicketStore, event_id: int, ledger: Ledger, total: int) -> None:
    assert audit_event(store, event_id) == []
    partition = store.event_partition(event_id)
    event, places = partition.event, partition.places
    assert event is not None
    assert event.available_tickets + event.booked_tickets == total
    held = {p.email: p.status for p in places}
    for email, answers in ledger.told.items():
        final = held.get(email, Status.NONE)
        last = answers[-1]
        if last == Status.BOOKED:
            assert final == Status.BOOKED, f"{email} was told BOOKED but holds {final}"
        elif last == Status.WAITLISTED:
            assert final in (Status.BOOKED, Status.WAITLISTED), f"{email} waited but holds {final}"
        elif last == "CONFLICT":
            # 409: the person held a place then, and only their own requests
            # (none after this one) could have taken it away.
            assert final in (Status.BOOKED, Status.WAITLISTED), f"{email} got 409, holds {final}"
        elif last.startswith("CANCELLED") or last == "NO_PLACE":
            assert final == Status.NONE, f"{email} cancelled but still holds {final}"
        else:
            raise AssertionError(f"{email}: unexpected answer {last!r}")
    # Nobody holds a place they never asked for.
    assert set(held) <= set(ledger.told)


def test_sixty_clients_race_for_twenty_tickets(local_store: TicketStore) -> None:
    total, clients = 20, 60
    event = booking.create_event(local_store, "Flash sale", total, owner_id=ORGANISER_ID)
    ledger = Ledger()
    emails = [f"fan{n}@example.com" for n in range(clients)]

    def job(i: int, store: TicketStore) -> None:
        book(ledger, store, event.event_id, emails[i])
        if i % 4 == 0:  # a quarter change their mind at once
            cancel(ledger, store, event.event_id, emails[i])

    run_together(clients, job, local_store)

    first_answers = [answers[0] for answers in ledger.told.values()]
    print(
        f"\n60 clients / 20 tickets: {first_answers.count(Status.BOOKED)} booked first time, "
        f"{first_answers.count(Status.WAITLISTED)} waitlisted, "
        f"{sum(a[-1].startswith('CANCELLED') for a in ledger.told.values())} cancelled"
    )
    assert first_answers.count(Status.BOOKED) >= total  # every ticket was sold once...
    assert first_answers.count(Status.BOOKED) <= total + clients // 4  # ...and resold only if freed
    assert_consistent(local_store, event.event_id, ledger, total)
    event_after = local_store.event_partition(event.event_id).event
    assert event_after is not None
    # 60 wanted tickets, 15 gave up: demand (45) > supply (20), so all 20 stay sold.
    assert event_after.booked_tickets == total
    assert event_after.waiting_list_count == clients - clients // 4 - total


def test_duplicate_requests_from_one_person_hold_one_place(local_store: TicketStore) -> None:
    event = booking.create_event(local_store, "Gig", 3, owner_id=ORGANISER_ID)
    ledger = Ledger()
    run_together(
        24,
        lambda i, store: book(ledger, store, event.event_id, f"p{i % 4}@example.com"),
        local_store,
    )
    assert_consistent(local_store, event.event_id, ledger, 3)
    for answers in ledger.told.values():
        assert len(answers) == 6
        assert answers.count("CONFLICT") == 5  # exactly one of six requests got a place
    places = local_store.event_partition(event.event_id).places
    assert len(places) == 4


def test_cancellations_racing_new_bookings_keep_the_queue_in_order(
    local_store: TicketStore,
) -> None:
    total = 10
    event = booking.create_event(local_store, "Gig", total, owner_id=ORGANISER_ID)
    ledger = Ledger()
    first_wave = [f"a{n}@example.com" for n in range(30)]
    for email in first_wave:  # 10 booked, 20 waiting, in this order
        book(ledger, local_store, event.event_id, email)
    rng = random.Random(42)
    leavers = rng.sample(first_wave, 16)
    newcomers = [f"b{n}@example.com" for n in range(16)]
    jobs = [("cancel", e) for e in leavers] + [("book", e) for e in newcomers]
    rng.shuffle(jobs)

    def job(i: int, store: TicketStore) -> None:
        action, email = jobs[i]
        (cancel if action == "cancel" else book)(ledger, store, event.event_id, email)

    run_together(len(jobs), job, local_store)
    assert_consistent(local_store, event.event_id, ledger, total)
    places = local_store.event_partition(event.event_id).places
    # First-wave people who stayed were queued before every newcomer: they are
    # served first, so no newcomer holds a ticket while a first-wave person waits.
    stayed_waiting = [
        p for p in places if p.status == Status.WAITLISTED and p.email.startswith("a")
    ]
    booked_newcomers = [p for p in places if p.status == Status.BOOKED and p.email.startswith("b")]
    assert not (stayed_waiting and booked_newcomers)


def test_concurrent_status_reads_never_see_a_broken_event(
    local_store: TicketStore, dynamodb_local: DynamoDBLocal
) -> None:
    event = booking.create_event(local_store, "Gig", 5, owner_id=ORGANISER_ID)
    broken: list[str] = []

    def job(i: int, store: TicketStore) -> None:
        if i % 2:
            book(Ledger(), store, event.event_id, f"r{i}@example.com")
            return
        for _ in range(10):
            seen = booking.get_event(store, event.event_id)
            if seen.available_tickets + seen.booked_tickets != seen.total_tickets:
                broken.append(repr(seen))
            if seen.available_tickets > 0 and seen.waiting_list_count > 0:
                broken.append(repr(seen))

    run_together(40, job, local_store)
    assert broken == []

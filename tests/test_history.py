"""Every answer describes one moment: a linearizability check of a recorded history (issue #13).

Twelve client threads invoke the real app in this process, with the events API
Gateway sends (``devtools.harness.LambdaInstance``; the one app object made
safe for threads the way ``chalice local`` does it, one thread-safe boto3
client to DynamoDB Local). They send random book / cancel / standing requests
for 8 people on each of 3 events of 3 tickets, one request per person at a
time, while 8 % of the service's DynamoDB calls fail (conflicts, throttling,
5xx, writes applied and then lost) or are slow (delayed before they are sent or
after they are applied: races that need luck on a fast local table get room).
The service is given fewer attempts than in production, so a few requests end
as 503 and their outcome is unknown to the client.

Each answer is recorded with its ``time.monotonic()`` call and return times,
and ``devtools.linearizability`` checks the whole history against a sequential
model of each event: some order of the operations, consistent with real time,
must give every client the answer it got. Afterwards the table passes the audit.

Before the position index, ``get_standing`` read the place, then counted the
waiting list up to its key in a second read; a promotion in between made it
answer ``WAITLISTED, position 0`` to a person who held a ticket. This test
caught it in every run (10 to 22 such answers a run). Now the place, the
event and the index nodes are read in one ``TransactGetItems``: the history must
be linearizable, with no such answer, and a pause between the standing's first
read and its snapshot must change nothing (``standing_pause``).
``test_history_check_catches_mutation`` proves the check can fail: it puts the
old race back (the place and the counts read apart), and plants two other bugs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib import booking
from chalicelib.audit import audit_events
from chalicelib.observability import logger
from chalicelib.retry import RetryPolicy
from chalicelib.storage import TicketStore, ticket_store
from chalicelib.storage.store import Snapshot
from devtools.faults import FaultInjector
from devtools.harness import (
    READ_OPERATIONS,
    WRITE_OPERATIONS,
    LambdaInstance,
    threads_share_the_app,
)
from devtools.issuer import LocalIssuer
from devtools.linearizability import (
    Action,
    Answer,
    HistoryVerdict,
    Operation,
    Reply,
    check_history,
)

pytestmark = [
    pytest.mark.dynamodb_local,
    pytest.mark.slow,
    # Powertools' Metrics is one object per process (one request at a time in
    # Lambda); threads sharing it sometimes flush one another's metrics, and the
    # second flush finds nothing to publish. Harmless here.
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

EVENTS = 3
TICKETS = 3
PEOPLE = 8  # per event
CLIENTS = 12
#: Seconds of load in the main run (``HISTORY_SECONDS`` overrides, for longer hunts).
RUN_SECONDS = float(os.environ.get("HISTORY_SECONDS", "20"))
MUTATION_SECONDS = 4.0
#: Per DynamoDB call, reads and writes alike: 8 % in all, a third of it slowness.
FAULT_RATES = {
    "conflict": 0.01,
    "transaction_conflict": 0.01,
    "throttling": 0.01,
    "internal": 0.01,
    "applied_then_lost": 0.015,
    "delay_before": 0.0125,
    "delay_after": 0.0125,
}
DELAY = 0.05
#: Fewer attempts than production's, so that some requests do end in 503.
SERVICE_RETRY = RetryPolicy(max_attempts=2, base_delay=0.005, max_delay=0.05)
#: What a client asks for, weighted by what it last heard of the person: mostly
#: what makes sense (book when holding nothing, cancel when holding a place), with
#: some 409s and 404s, and many standings (cheap, and they catch the most).
ACTIONS = (Action.BOOK, Action.CANCEL, Action.STANDING)
WEIGHTS_HOLDING_NOTHING = (0.6, 0.1, 0.3)
WEIGHTS_HOLDING_A_PLACE = (0.15, 0.4, 0.45)
#: Per event, for the checker; the run's whole history checks in a few seconds.
CHECK_SECONDS = 60.0


@dataclass
class Run:
    """What a load run produced: the history, and what else went wrong."""

    operations: list[Operation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    figures: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: Operation) -> None:
        with self.lock:
            self.operations.append(op)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def answer_of(action: Action, status: int, body: dict[str, Any]) -> Answer | None:
    """The model's form of an HTTP answer; None when the outcome is unknown (503).

    Raises ``ValueError`` for an answer the contract does not allow at all.
    """
    if status == 503:
        return None
    if action == Action.BOOK:
        if status == 201 and body.get("status") == "BOOKED":
            return Answer(Reply.BOOKED)
        if status == 202 and body.get("status") == "WAITLISTED":
            return Answer(Reply.WAITLISTED, position=body.get("position"))
        message = body.get("Message", "") if status == 409 else ""
        if "already holds a ticket" in message:
            return Answer(Reply.ALREADY_BOOKED)
        if "already holds a place on the waiting list" in message:
            return Answer(Reply.ALREADY_WAITLISTED)
    elif action == Action.CANCEL:
        if status == 200 and body.get("previousStatus") == "BOOKED":
            return Answer(Reply.GAVE_UP_TICKET, promoted=body.get("ticketPassedToWaitingList"))
        if status == 200 and body.get("previousStatus") == "WAITLISTED":
            return Answer(Reply.LEFT_WAITING_LIST)
        if status == 404:
            return Answer(Reply.NOT_HELD)
    elif status == 200 and body.get("status") in ("BOOKED", "NONE"):
        return Answer(Reply(body["status"]))
    elif status == 200 and body.get("status") == "WAITLISTED":
        return Answer(Reply.WAITLISTED, position=body.get("position"))
    raise ValueError(f"{action} answered {status} {body}")


def run_clients(store: TicketStore, issuer: LocalIssuer, seconds: float, seed: int) -> Run:
    """Create the events, let the clients loose for ``seconds``, return the history."""
    organiser = issuer.subject("organiser@example.com")
    events = [
        booking.create_event(store, f"History {n}", TICKETS, owner_id=organiser).event_id
        for n in range(EVENTS)
    ]
    people = [f"p{n}@example.com" for n in range(PEOPLE)]
    tokens = {email: issuer.token(email) for email in people}
    service_store = ticket_store()
    service_store.retry = SERVICE_RETRY
    faults = FaultInjector.random(
        FAULT_RATES, seed=seed, operations=(*WRITE_OPERATIONS, *READ_OPERATIONS), delay=DELAY
    ).attach(service_store.client)
    run = Run()
    idle = [(event_id, email) for event_id in events for email in people]
    holds: set[tuple[int, str]] = set()  # who last heard they hold a place
    idle_lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def take(rng: random.Random) -> tuple[int, str]:
        """A (event, person) nobody is acting for: one request per person at a time."""
        with idle_lock:
            return idle.pop(rng.randrange(len(idle)))

    def give_back(pair: tuple[int, str]) -> None:
        with idle_lock:
            idle.append(pair)

    def client(number: int) -> None:
        try:
            requests(number)
        except Exception as error:  # a thread's exception would otherwise go unseen
            run.problem(f"client {number} stopped: {error!r}")

    def requests(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        service = LambdaInstance()
        while time.monotonic() < deadline:
            event_id, email = pair = take(rng)
            weights = WEIGHTS_HOLDING_A_PLACE if pair in holds else WEIGHTS_HOLDING_NOTHING
            action = rng.choices(ACTIONS, weights)[0]
            called = time.monotonic()
            status, body = send(service, action, event_id, tokens[email])
            returned = time.monotonic()
            try:
                answer = answer_of(action, status, body)
            except ValueError as error:
                give_back(pair)
                run.problem(f"{email} in {event_id}: {error}")
                continue
            if answer is not None and holds_after(action, answer):
                holds.add(pair)
            elif answer is not None:
                holds.discard(pair)
            give_back(pair)
            if status != 503 and body.get("userEmail", email) != email:
                run.problem(f"{email} asked, the answer is about {body['userEmail']}")
            run.record(
                Operation(
                    event_id,
                    email.split("@")[0],
                    action,
                    called,
                    None if answer is None else returned,
                    answer,
                    client=f"client {number}",
                )
            )

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    with threads_share_the_app(), quiet_service():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    run.figures.update({f"injected {kind}": n for kind, n in faults.injected.items()})
    report = audit_events(store, events)
    run.problems += [f"audit: {v.event_id} {v.rule}: {v.detail}" for v in report.violations]
    return run


def holds_after(action: Action, answer: Answer) -> bool:
    """Whether the answer tells the person they hold a place (a ticket or a waiting place)."""
    if action == Action.CANCEL:
        return False
    return answer.reply != Reply.NONE


def send(service: LambdaInstance, action: Action, event_id: int, token: str) -> tuple[int, Any]:
    if action == Action.STANDING:
        return service.invoke(
            "GET",
            f"/events/{event_id}/standing",
            resource="/events/{eventId}/standing",
            path_parameters={"eventId": str(event_id)},
            token=token,
        )
    return service.invoke("POST", f"/{action}", {"eventId": event_id}, token=token)


@contextlib.contextmanager
def quiet_service() -> Iterator[None]:
    """The service logs a JSON line per request (and a metrics document): thousands
    of them would only bury a failure, and cost the clients time. Warnings and
    errors still go out (to nowhere: the history says what matters)."""
    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        logger.setLevel(level)


def is_position_zero(op: Operation) -> bool:
    """The known standing race's signature (see the module docstring)."""
    answer = op.answer
    return (
        op.action == Action.STANDING
        and answer is not None
        and answer.reply == Reply.WAITLISTED
        and (answer.position or 0) < 1
    )


def check(ops: list[Operation]) -> HistoryVerdict:
    return check_history(ops, dict.fromkeys({op.event_id for op in ops}, TICKETS), CHECK_SECONDS)


def summary(run: Run, verdict: HistoryVerdict) -> str:
    ops = run.operations
    answers = Counter(f"{op.action} {op.answer.reply if op.answer else 'unknown'}" for op in ops)
    promotions = sum(1 for op in ops if op.answer and op.answer.promoted)
    return (
        f"{len(ops)} operations on {len({op.event_id for op in ops})} events, "
        f"{sum(1 for op in ops if op.unknown)} with unknown outcome (503), "
        f"{promotions} promotions, {sum(1 for op in ops if is_position_zero(op))} standings "
        f"answered WAITLISTED 0; checked in {verdict.seconds:.2f} s "
        f"({sum(v.configurations for v in verdict.events)} configurations); "
        + ", ".join(f"{k} {v}" for k, v in sorted(answers.items()))
        + "; "
        + ", ".join(f"{k} {v}" for k, v in sorted(run.figures.items()))
    )


def test_history_of_concurrent_requests_under_faults_is_linearizable(
    local_store: TicketStore, issuer: LocalIssuer
) -> None:
    run = run_clients(local_store, issuer, RUN_SECONDS, seed=13)
    verdict = check(run.operations)
    print("\n" + summary(run, verdict))
    assert run.problems == []
    assert len(run.operations) >= 500  # about 1,500 on an idle 2-core machine
    assert any(op.answer and op.answer.promoted for op in run.operations)
    assert sum(1 for op in run.operations if op.unknown) > 0
    assert not [op for op in run.operations if is_position_zero(op)]
    assert verdict.linearizable is True, verdict.report()


def test_a_pause_inside_the_standing_read_changes_nothing(
    local_store: TicketStore, issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old race's window, held open: with one snapshot it must find nothing."""
    standing_pause(monkeypatch)
    run = run_clients(local_store, issuer, MUTATION_SECONDS, seed=7)
    verdict = check(run.operations)
    print("\n" + summary(run, verdict))
    assert not [op for op in run.operations if is_position_zero(op)]
    assert verdict.linearizable is True, verdict.report()


# -- mutation runs: the same test against deliberately broken services -----------------


def standing_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pause between a standing's first read (the place) and its snapshot."""
    original = TicketStore.place_and_event

    def slow_first_read(self: TicketStore, event_id: int, email: str) -> Any:
        place, event = original(self, event_id, email)
        if place is not None and place.wait_key is not None:
            time.sleep(0.1)
        return place, event

    monkeypatch.setattr(TicketStore, "place_and_event", slow_first_read)


def second_waiter_promoted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO bug: a cancellation hands the ticket to the second in line, not the first."""
    original = TicketStore.waitlist_heads

    def second_first(self: TicketStore, event_id: int, limit: int) -> list[Any]:
        heads = original(self, event_id, limit)
        return [*heads[1:2], *heads[:1], *heads[2:]]

    monkeypatch.setattr(TicketStore, "waitlist_heads", second_first)


def positions_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Positions counted one too many (bookings and standings alike)."""
    original = Snapshot.position

    def one_more(self: Snapshot) -> int:
        return original(self) + 1

    monkeypatch.setattr(Snapshot, "position", one_more)


def promoted_by_count_read_as_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standing read broken: a place promoted by count is judged by its stored
    status, "waiting", and answered "waiting, position 0" (or less).

    This replaced the mutation that read the place and the counts apart (the race
    #13 found: a promotion between the reads gave "waiting, position 0"). Since
    cancellations promote by count, a place read before a promotion and counts
    read after it *do* describe a ticket holder (position 0 or less is a ticket),
    so that mutation no longer broke anything this check could see: it ran
    linearizable. Misreading position 0 is how the same bug shows now.
    """
    monkeypatch.setattr(booking, "holds_ticket_by_count", lambda position: False)


MUTATIONS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "promoted_by_count_read_as_waiting": promoted_by_count_read_as_waiting,
    "second_waiter_promoted": second_waiter_promoted,
    "positions_off_by_one": positions_off_by_one,
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_history_check_catches_mutation(
    local_store: TicketStore, issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch, mutation: str
) -> None:
    """The check is worth something only if it fails on a broken service: each
    mutation (monkeypatched for this test only) must make the history non-linearizable."""
    MUTATIONS[mutation](monkeypatch)
    run = run_clients(local_store, issuer, MUTATION_SECONDS, seed=7)
    if mutation == "promoted_by_count_read_as_waiting":
        assert any(is_position_zero(op) for op in run.operations)
    verdict = check(run.operations)
    print(f"\nmutation {mutation}: {summary(run, verdict)}\n{verdict.report()}")
    assert verdict.linearizable is False

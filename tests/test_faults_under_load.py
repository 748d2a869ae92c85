"""Many Lambda instances, many clients, 10-20 % of DynamoDB calls faulted: nothing breaks.

Eight worker processes (each one "Lambda instance" with its own boto3 client and
its own fault injector) serve a few thousand book / cancel requests from a few
hundred emails against three small events on DynamoDB Local. About 15 % of
DynamoDB calls fail the way real DynamoDB fails: transaction conflicts,
throttling, 5xx, and writes that are applied while the caller sees a timeout.
Clients behave like real ones: they retry on 503 and on a lost response (with
the same ``Idempotency-Key`` for a booking), and each email is used by one
client at a time, which remembers what it was told.

Afterwards, reading the table: the audit is clean; everyone told "booked" who
did not cancel holds a ticket; nobody holds a ticket they were not told about
unless they were promoted from the waiting list; promotions went in
waiting-list order (the audit's ``fifo-promotion`` rule).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chalicelib.audit import audit_event
from chalicelib.models import Status
from chalicelib.storage import TicketStore
from devtools.dynamodb_local import LOCAL_CREDENTIALS
from devtools.issuer import LocalIssuer

pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]

WORKERS = 8
REQUESTS_PER_WORKER = 300  # book / cancel requests, before client retries
EMAILS_PER_WORKER = 30  # 240 people in all
CAPACITIES = (3, 8, 15)
#: Per DynamoDB call: 15 % in all. "applied_then_lost" is the ambiguous one.
FAULT_RATES = {
    "conflict": 0.03,
    "transaction_conflict": 0.02,
    "throughput": 0.02,
    "throttling": 0.02,
    "internal": 0.02,
    "applied_then_lost": 0.04,
}
#: A client loses this share of the service's answers (e.g. a dropped connection
#: after the service replied) and must retry without knowing the outcome.
LOST_ANSWER_RATE = 0.05
CLIENT_ATTEMPTS = 8
ORGANISERS = ("org-a@example.com", "org-b@example.com")


def client_worker(
    index: int,
    endpoint: str,
    table: str,
    owners: dict[int, str],
    issuer_directory: str,
    results: Any,
) -> None:
    """One Lambda instance plus the clients whose requests it serves.

    Each person signs in with their own token; now and then one of the two
    organisers acts as box office instead, which works on their own events and
    must be refused (403, nothing changed) on the other's.
    """
    from devtools.issuer import LocalIssuer

    issuer = LocalIssuer(Path(issuer_directory))
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.update({"TICKETS_TABLE": table, "DYNAMODB_ENDPOINT_URL": endpoint})
    os.environ.update(issuer.environment)
    event_ids = sorted(owners)
    tokens: dict[tuple[str, bool], str] = {}

    def token(email: str, organiser: bool = False) -> str:
        if (email, organiser) not in tokens:
            tokens[(email, organiser)] = issuer.token(email, organiser=organiser)
        return tokens[(email, organiser)]

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the service's request log lines)
    from chalicelib.retry import RetryPolicy
    from chalicelib.storage import ticket_store
    from devtools.faults import FaultInjector
    from devtools.harness import READ_OPERATIONS, WRITE_OPERATIONS, LambdaInstance, RequestMeter

    store = ticket_store()
    # Fewer service-side attempts than in production, so that some requests do
    # run out of retries and the clients' 503 handling is exercised too.
    store.retry = RetryPolicy(max_attempts=3, base_delay=0.005, max_delay=0.05)
    faults = FaultInjector.random(
        FAULT_RATES, seed=index, operations=(*WRITE_OPERATIONS, *READ_OPERATIONS)
    ).attach(store.client)
    meter = RequestMeter().attach(store.client)
    service = LambdaInstance()
    rng = random.Random(1000 + index)
    emails = [f"w{index}-p{n}@example.com" for n in range(EMAILS_PER_WORKER)]
    told: dict[tuple[int, str], str] = {}  # what each person last heard for each event
    figures: Counter[str] = Counter()
    problems: list[str] = []

    def call(
        path: str, body: dict[str, Any], key: str | None, caller: str
    ) -> tuple[int, dict[str, Any], bool]:
        """Send until an answer arrives (retrying on 503 and on a lost answer).

        Also says whether an earlier attempt may have been applied unseen.
        """
        unsure = False
        for attempt in range(CLIENT_ATTEMPTS):
            if attempt:
                figures["client retries"] += 1
            figures["requests"] += 1
            status, reply = service.invoke("POST", path, body, key, token=caller)
            if status == 503:  # maybe applied, if DynamoDB timed out inside
                figures["503 answers"] += 1
                unsure = True
                time.sleep(0.01)
                continue
            if rng.random() < LOST_ANSWER_RATE:
                figures["answers lost on the way back"] += 1
                unsure = True
                continue
            return status, reply, unsure
        raise AssertionError(f"no answer for {path} {body} after {CLIENT_ATTEMPTS} attempts")

    def standing(event_id: int, email: str) -> str:
        for _ in range(CLIENT_ATTEMPTS):
            status, reply = service.invoke(
                "GET",
                f"/events/{event_id}/standing",
                resource="/events/{eventId}/standing",
                path_parameters={"eventId": str(event_id)},
                token=token(email),
            )
            if status == 200:
                if reply["userEmail"] != email:
                    problems.append(f"{email} asked for their standing, got {reply['userEmail']}'s")
                return str(reply["status"])
        raise AssertionError(f"no standing for {email} in {event_id}")

    def box_office_refused(event_id: int, email: str, organiser: str) -> None:
        """Another organiser's event: a 403 with nothing changed."""
        path = rng.choice(["/book", "/cancel"])
        body = {"eventId": event_id, "userEmail": email}
        status, reply, _ = call(path, body, None, token(organiser, organiser=True))
        figures["box office refused on another organiser's event"] += 1
        if status != 403:
            problems.append(f"{organiser} acted for {email} in {event_id}: {status} {reply}")

    for _ in range(REQUESTS_PER_WORKER):
        event_id = rng.choice(event_ids)
        email = rng.choice(emails)
        heard = told.get((event_id, email), Status.NONE)
        body = {"eventId": event_id, "userEmail": email}
        caller = token(email)
        if rng.random() < 0.1:  # the box office acts instead of the person
            organiser = rng.choice(sorted(set(owners.values())))
            if owners[event_id] != organiser:
                box_office_refused(event_id, email, organiser)
                continue
            caller = token(organiser, organiser=True)
            figures["box office requests"] += 1
        if heard == Status.NONE or rng.random() < 0.1:
            # Half the clients send an Idempotency-Key (one per booking they
            # mean to make); the others learn their standing after a 409.
            key = uuid.uuid4().hex if rng.random() < 0.5 else None
            status, reply, unsure = call("/book", body, key, caller)
            if status in (201, 202) and reply["userEmail"] != email:
                problems.append(f"a booking for {email} acted for {reply['userEmail']}")
            if status in (201, 202):
                told[(event_id, email)] = reply["status"]
                if unsure and key is not None and not reply.get("idempotentReplay"):
                    figures["bookings made on a retry"] += 1
            elif status == 409:
                if heard == Status.NONE and (key is not None or not unsure):
                    problems.append(f"{email} in {event_id}: 409 but was told nothing")
                if heard == Status.NONE:
                    told[(event_id, email)] = standing(event_id, email)
                    figures["409 after a lost answer, standing asked"] += 1
            else:
                problems.append(f"{email} in {event_id}: book answered {status} {reply}")
        else:
            status, reply, unsure = call("/cancel", body, None, caller)
            if status == 200 and reply["userEmail"] != email:
                problems.append(f"a cancellation for {email} acted for {reply['userEmail']}")
            if status == 200 or status == 404:
                # 404 is right only when an earlier attempt's answer was lost
                # after it cancelled: the person held a place until then.
                if status == 404 and not unsure:
                    problems.append(f"{email} in {event_id}: told {heard}, cancel answered 404")
                told[(event_id, email)] = Status.NONE
                what = reply.get("previousStatus", "404") if status == 200 else "404"
                figures[
                    {"BOOKED": "tickets given up", "WAITLISTED": "waiting list left"}.get(
                        what, "cancels answered 404"
                    )
                ] += 1
            else:
                problems.append(f"{email} in {event_id}: cancel answered {status} {reply}")
    figures.update({f"injected {kind}": n for kind, n in faults.injected.items()})
    figures["dynamodb calls"] = meter.total
    results.put(({f"{e}|{m}": s for (e, m), s in told.items()}, dict(figures), problems))


def test_faults_under_concurrent_load_break_no_invariant(
    local_store: TicketStore, issuer: LocalIssuer
) -> None:
    from chalicelib import booking

    # Two organisers: the first owns the first and last events, the second the middle one.
    owners = {}
    for position, capacity in enumerate(CAPACITIES):
        organiser = ORGANISERS[position % 2]
        event = booking.create_event(
            local_store, f"Small event {capacity}", capacity, owner_id=issuer.subject(organiser)
        )
        owners[event.event_id] = organiser
    event_ids = sorted(owners)
    endpoint = local_store.client.meta.endpoint_url
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    directory = str(issuer.key_path.parent)
    workers = [
        context.Process(
            target=client_worker,
            args=(i, endpoint, local_store.table_name, owners, directory, results),
        )
        for i in range(WORKERS)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    elapsed = time.perf_counter() - started

    told: dict[str, str] = {}
    figures: Counter[str] = Counter()
    problems: list[str] = []
    for worker_told, worker_figures, worker_problems in outcomes:
        told.update(worker_told)
        figures.update(worker_figures)
        problems += worker_problems

    violations = []
    holdings: dict[str, Any] = {}
    for event_id, capacity in zip(event_ids, CAPACITIES, strict=True):
        violations += audit_event(local_store, event_id)
        partition = local_store.event_partition(event_id)
        event, places = partition.event, partition.places
        assert event is not None
        assert event.booked_tickets <= capacity
        holdings.update({f"{event_id}|{p.email}": p for p in places})
    for key, heard in told.items():
        place = holdings.get(key)
        held = place.status if place else Status.NONE
        if heard == Status.BOOKED and held != Status.BOOKED:
            problems.append(f"{key}: told BOOKED, holds {held}")
        elif heard == Status.WAITLISTED and held == Status.NONE:
            problems.append(f"{key}: told WAITLISTED, holds nothing")
        elif heard == Status.NONE and held != Status.NONE:
            problems.append(f"{key}: told it holds nothing, holds {held}")
    for key, place in holdings.items():
        heard = told.get(key, Status.NONE)
        if (
            place.status == Status.BOOKED
            and heard == Status.WAITLISTED
            and place.promoted_from_wait_key is None
        ):
            problems.append(f"{key}: holds a ticket it was never told about, not promoted")

    promoted = sum(1 for p in holdings.values() if p.promoted_from_wait_key is not None)
    print(
        f"\n{WORKERS} processes, {elapsed:.1f} s: {figures['requests']} requests "
        f"({figures['client retries']} client retries, {figures['503 answers']} answered 503, "
        f"{figures['answers lost on the way back']} answers lost), "
        f"{figures['tickets given up']} tickets given up, {figures['waiting list left']} "
        f"left the waiting list, {figures['cancels answered 404']} cancels answered 404, "
        f"{figures['409 after a lost answer, standing asked']} bookings answered 409 after a "
        f"lost answer (standing asked); "
        f"{figures['dynamodb calls']} DynamoDB calls, "
        + ", ".join(f"{k} {v}" for k, v in sorted(figures.items()) if k.startswith("injected"))
        + f"; {promoted} promotions; violations {len(violations)}, problems {len(problems)}"
    )
    for problem in problems[:20]:
        print("PROBLEM", problem)
    injected = sum(v for k, v in figures.items() if k.startswith("injected"))
    assert 0.10 <= injected / figures["dynamodb calls"] <= 0.20
    assert figures["injected applied_then_lost"] > 0
    assert figures["requests"] >= 2000
    assert violations == []
    assert problems == []
    assert promoted > 0  # the scenario did exercise promotion...
    assert figures["503 answers"] > 0  # ...and the 503 path
    assert figures["waiting list left"] > 0
    assert figures["box office requests"] > 0  # organisers acted for people...
    assert figures["box office refused on another organiser's event"] > 0  # ...and were refused

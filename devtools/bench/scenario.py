"""The flash sale itself: worker processes ("Lambda instances") running phases in lock-step.

Each worker invokes the real Chalice app with API Gateway-shaped events
(``devtools.harness.LambdaInstance``); every DynamoDB request and its consumed
capacity is counted by ``devtools.harness.RequestMeter``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.clock import booking_key_now, now_iso
from chalicelib.models import Place, Status
from chalicelib.storage import items, schema
from devtools.dynamodb_local import LOCAL_CREDENTIALS, local_client
from devtools.harness import LambdaInstance, RequestMeter

#: phase name -> (what the phase's calls should answer, the endpoint they call)
PHASES = {
    "warmup": ("BOOKED", "/book"),
    "warmup_baseline": ("BOOKED", None),
    "book": ("BOOKED", "/book"),
    "waitlist": ("WAITLISTED", "/book"),
    "cancel_promote": ("PROMOTED", "/cancel"),
    "baseline": ("BOOKED", None),
    "large_first": ("BOOKED", "/book"),
    "large_last": ("BOOKED", "/book"),
}

#: The organiser who owns the benchmark's events.
ORGANISER_ID = "bench-organiser"

#: The partition of the bare baseline counter (not an event: no service code reads it).
BASELINE_COUNTERS = ("BASELINE", "WARMUP_BASELINE")

Job = tuple[str, int, list[str]]  # (phase, event id, this worker's emails)


@dataclass
class Sample:
    """One measured call: its phase, what it answered, how long, what it cost."""

    phase: str
    outcome: str
    seconds: float
    finished: float
    requests: int
    write_units: float
    read_units: float


def kind(phase: str) -> str:
    """``book_2`` (an ABBA block) -> ``book``."""
    name, _, block = phase.rpartition("_")
    return name if block.isdigit() else phase


def outcome_of(phase: str, status: int, body: dict[str, Any]) -> str:
    if phase == "cancel_promote":
        if status == 200:
            return "PROMOTED" if body.get("ticketPassedToWaitingList") else "RELEASED"
        return f"HTTP {status}"
    if status in (201, 202):
        return str(body.get("status"))
    return f"HTTP {status}"


def put_baseline_counter(client: Any, table: str, counter: str, tickets: int) -> None:
    client.put_item(
        TableName=table,
        Item={
            "PK": items.string(counter),
            "SK": items.string("COUNTER"),
            "availableTickets": items.number(tickets),
        },
    )


def baseline_booking(client: Any, table: str, email: str, counter: str = "BASELINE") -> str:
    """The floor: the one transaction a booking needs, with no application code."""
    try:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"PK": items.string(counter), "SK": items.string("COUNTER")},
                        "UpdateExpression": "SET availableTickets = availableTickets - :one",
                        "ConditionExpression": "availableTickets > :zero",
                        "ExpressionAttributeValues": {
                            ":one": items.number(1),
                            ":zero": items.number(0),
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            "PK": items.string(counter),
                            "SK": items.string(schema.person_sort_key(email)),
                            "status": items.string(Status.BOOKED),
                        },
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
            ]
        )
        return "BOOKED"
    except client.exceptions.TransactionCanceledException:
        return "REFUSED"


@dataclass
class _Instance:
    """What one worker process holds: the app, its meter, a bare client, the issuer."""

    table: str
    app: LambdaInstance
    meter: RequestMeter
    baseline_client: Any
    issuer: Any
    tokens: dict[str, str] = field(default_factory=dict)


def _start_instance(endpoint: str, table: str, issuer_directory: str) -> _Instance:
    from devtools.issuer import LocalIssuer

    issuer = LocalIssuer(Path(issuer_directory))
    os.environ.update(issuer.environment)
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.update(
        {schema.TABLE_NAME_ENV: table, schema.ENDPOINT_URL_ENV: endpoint, "LOG_LEVEL": "INFO"}
    )
    # The service logs one line per request as in production; CloudWatch would
    # take it from stdout, here it goes nowhere (but is still formatted).
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    meter = RequestMeter()
    app = LambdaInstance(meter)
    baseline_client = local_client(endpoint, retries={"max_attempts": 1})
    meter.attach(baseline_client)
    return _Instance(table, app, meter, baseline_client, issuer)


def _measure(instance: _Instance, phase: str, event_id: int, email: str) -> Sample:
    """One call of ``phase`` for ``email``: its answer, its time and its DynamoDB cost.

    The token was minted before the phase: what is measured is the service's
    work, token verification included.
    """
    path = PHASES[kind(phase)][1]
    token = instance.tokens.get(email)
    instance.meter.reset()
    started = time.perf_counter()
    if path is None:
        counter = BASELINE_COUNTERS[1] if phase.startswith("warmup") else BASELINE_COUNTERS[0]
        outcome = baseline_booking(instance.baseline_client, instance.table, email, counter)
    else:
        body = {"eventId": event_id, "userEmail": email}
        status, answer = instance.app.invoke("POST", path, body, token=token)
        outcome = outcome_of(phase, status, answer)
    meter = instance.meter
    seconds = time.perf_counter() - started
    return Sample(
        phase, outcome, seconds, time.time(), meter.total, meter.write_units, meter.read_units
    )


def _worker(
    endpoint: str, table: str, issuer_directory: str, barrier: Any, jobs: list[Job], results: Any
) -> None:
    """One "Lambda instance": runs its share of each phase, starting with the others.

    Every person's token is minted before the first phase, so that signing them
    (the client's work) weighs on no phase's duration.
    """
    instance = _start_instance(endpoint, table, issuer_directory)
    instance.tokens = {
        email: instance.issuer.token(email)
        for phase, _, emails in jobs
        if PHASES[kind(phase)][1] is not None
        for email in emails
    }
    samples: list[dict[str, Any]] = []
    for phase, event_id, emails in jobs:
        barrier.wait()  # the phase starts in every worker at once
        samples += [_measure(instance, phase, event_id, email).__dict__ for email in emails]
        barrier.wait()  # ...and ends when the last worker is done
    results.put(samples)


def run_phases(
    endpoint: str,
    table: str,
    processes: int,
    phases: list[Job],
    issuer_directory: str,
    before: dict[str, Callable[[], None]] | None = None,
) -> tuple[list[Sample], dict[str, float]]:
    """Run the phases in order across ``processes`` workers; return samples and durations.

    Two barriers bracket each phase: every worker starts it at the same moment,
    and the phase lasts until the last worker finished it. ``before[phase]``
    runs in this process between phases, while the workers wait.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = []
    for index in range(processes):
        jobs = [(phase, event_id, emails[index::processes]) for phase, event_id, emails in phases]
        workers.append(
            context.Process(
                target=_worker,
                args=(endpoint, table, issuer_directory, barrier, jobs, results),
            )
        )
    for worker in workers:
        worker.start()
    durations = {}
    for phase, _, _ in phases:
        if before and phase in before:
            before[phase]()
        barrier.wait(timeout=900)
        started = time.perf_counter()
        barrier.wait(timeout=900)
        durations[phase] = time.perf_counter() - started
    samples = [Sample(**s) for _ in workers for s in results.get(timeout=600)]
    for worker in workers:
        worker.join(timeout=60)
    return samples, durations


def prefill_bookings(client: Any, table: str, event_id: int, count: int) -> None:
    """Give ``count`` people a ticket directly (BatchWriteItem) and move the counters.

    Only to put a large event in the state it would be in after ``count``
    bookings, quickly: the items are the ones a booking writes (same mapping).
    """
    now = now_iso()
    requests = [
        {
            "PutRequest": {
                "Item": items.place_to_item(
                    Place(
                        event_id,
                        f"filler{i:06d}@example.com",
                        Status.BOOKED,
                        booking_key=booking_key_now() + i,
                    ),
                    now,
                )
            }
        }
        for i in range(count)
    ]
    for start in range(0, len(requests), 25):
        pending = {table: requests[start : start + 25]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
    client.update_item(
        TableName=table,
        Key=schema.event_key(event_id),
        UpdateExpression="SET availableTickets = availableTickets - :n,"
        " bookedTickets = bookedTickets + :n",
        ExpressionAttributeValues={":n": items.number(count)},
    )

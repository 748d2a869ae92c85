"""``make bench``: a flash sale on DynamoDB Local, measured against the database's own limit.

    python -m devtools.bench [--processes 8] [--tickets 1000] [--users 3000] [--cancels 500]
                             [--large-event 10000] [--out bench-results]

Phases, each started by all worker processes at once (a barrier), each worker
being one "Lambda instance" that invokes the real Chalice app with API
Gateway-shaped events (no HTTP server in the measured path):

1. flash sale: ``tickets`` distinct users book one event of ``tickets`` tickets;
2. waiting list: ``users - tickets`` more users book the sold-out event;
3. cancellation wave: ``cancels`` ticket holders cancel, each promoting the head
   of the waiting list;
4. baseline: the same processes issue the minimal booking transaction (one
   conditional counter update + one put) with no application code, on a fresh
   counter of ``tickets``;
5. large event (optional): ``large_event`` users book an event of that many
   tickets, to compare bookings 1-1000 with the last 1000.

Every DynamoDB request is counted with a botocore event hook and asked for its
consumed capacity (``ReturnConsumedCapacity=TOTAL``, added by the same hook, so
the service code is unchanged). Results: a table on stdout, JSON and a PNG plot
in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from devtools.dynamodb_local import LOCAL_CREDENTIALS, ROOT, DynamoDBLocal, local_client
from devtools.faults import WRITE_OPERATIONS
from devtools.tables import create_table_if_missing

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


@dataclass
class CallMeter:
    """Counts the DynamoDB requests and consumed capacity of the call in progress."""

    requests: Counter[str] = field(default_factory=Counter)
    write_units: float = 0.0
    read_units: float = 0.0

    def reset(self) -> None:
        self.requests.clear()
        self.write_units = self.read_units = 0.0

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.dynamodb.*", self._ask_for_capacity)
        events.register("before-call.dynamodb.*", self._count)
        events.register("after-call.dynamodb.*", self._add_capacity)

    @staticmethod
    def _ask_for_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _count(self, model: Any, **_: Any) -> None:
        self.requests[model.name] += 1

    def _add_capacity(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity") or []
        writes = model.name in WRITE_OPERATIONS
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            units = float(entry.get("CapacityUnits", 0.0))
            if writes:
                self.write_units += units
            else:
                self.read_units += units


class _LambdaContext:
    aws_request_id = "bench"
    function_name = "bench"
    memory_limit_in_mb = 512

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


class LambdaInstance:
    """One worker process: the real app, invoked with the events API Gateway sends."""

    def __init__(self, meter: CallMeter | None = None) -> None:
        from app import app  # imported here: the environment is set first
        from chalicelib.storage import ticket_store

        self.app = app
        if meter is not None:
            meter.attach(ticket_store().client)

    def invoke(
        self,
        method: str,
        path: str,
        body: Any = None,
        idempotency_key: str | None = None,
        resource: str | None = None,
        path_parameters: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One API Gateway proxy event through the app; ``resource`` is the route template."""
        headers = {"content-type": "application/json"}
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        event = {
            "resource": resource or path,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()}
            if query
            else None,
            "pathParameters": path_parameters,
            "stageVariables": None,
            "body": None if body is None else json.dumps(body),
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": resource or path,
                "httpMethod": method,
                "requestId": str(uuid.uuid4()),
                "apiId": "bench",
                "stage": "api",
            },
        }
        response = self.app(event, _LambdaContext())
        return response["statusCode"], json.loads(response["body"])


def _outcome(phase: str, status: int, body: dict[str, Any]) -> str:
    if phase == "cancel_promote":
        if status == 200:
            return "PROMOTED" if body.get("ticketPassedToWaitingList") else "RELEASED"
        return f"HTTP {status}"
    if status in (201, 202):
        return str(body.get("status"))
    return f"HTTP {status}"


def _baseline_booking(client: Any, table: str, email: str, counter: str = "BASELINE") -> str:
    """The floor: the one transaction a booking needs, with no application code."""
    try:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"PK": {"S": counter}, "SK": {"S": "COUNTER"}},
                        "UpdateExpression": "SET availableTickets = availableTickets - :one",
                        "ConditionExpression": "availableTickets > :zero",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
                    }
                },
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            "PK": {"S": counter},
                            "SK": {"S": f"PERSON#{email}"},
                            "status": {"S": "BOOKED"},
                        },
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
            ]
        )
        return "BOOKED"
    except client.exceptions.TransactionCanceledException:
        return "REFUSED"


def _kind(phase: str) -> str:
    """``book_2`` (an ABBA block) -> ``book``."""
    kind, _, block = phase.rpartition("_")
    return kind if block.isdigit() else phase


Job = tuple[str, int, list[str]]  # (phase, event id, this worker's emails)


def _worker(endpoint: str, table: str, barrier: Any, jobs: list[Job], results: Any) -> None:
    """One "Lambda instance": runs its share of each phase, starting with the others."""
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.update(
        {"TICKETS_TABLE": table, "DYNAMODB_ENDPOINT_URL": endpoint, "LOG_LEVEL": "INFO"}
    )
    # The service logs one line per request as in production; CloudWatch would
    # take it from stdout, here it goes nowhere (but is still formatted).
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    meter = CallMeter()
    instance = LambdaInstance(meter)
    baseline_client = local_client(endpoint, retries={"max_attempts": 1})
    meter.attach(baseline_client)
    samples: list[dict[str, Any]] = []
    for phase, event_id, emails in jobs:
        barrier.wait()  # the phase starts in every worker at once
        path = PHASES[_kind(phase)][1]
        for email in emails:
            meter.reset()
            started = time.perf_counter()
            if path is None:
                counter = "WARMUP_BASELINE" if phase.startswith("warmup") else "BASELINE"
                outcome = _baseline_booking(baseline_client, table, email, counter)
            else:
                status, body = instance.invoke(
                    "POST", path, {"eventId": event_id, "userEmail": email}
                )
                outcome = _outcome(phase, status, body)
            seconds = time.perf_counter() - started
            samples.append(
                Sample(
                    phase,
                    outcome,
                    seconds,
                    time.time(),
                    sum(meter.requests.values()),
                    meter.write_units,
                    meter.read_units,
                ).__dict__
            )
        barrier.wait()  # ...and ends when the last worker is done
    results.put(samples)


def run_phases(
    endpoint: str,
    table: str,
    processes: int,
    phases: list[Job],
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
            context.Process(target=_worker, args=(endpoint, table, barrier, jobs, results))
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
    bookings, quickly: the items are the ones a booking writes.
    """
    from chalicelib.storage import event_key, now_iso, person_key

    now = now_iso()
    items = [
        {
            "PutRequest": {
                "Item": {
                    **person_key(event_id, f"filler{i:06d}@example.com"),
                    "status": {"S": "BOOKED"},
                    "joinedAt": {"S": now},
                    "bookedAt": {"S": now},
                }
            }
        }
        for i in range(count)
    ]
    for start in range(0, len(items), 25):
        pending = {table: items[start : start + 25]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
    client.update_item(
        TableName=table,
        Key=event_key(event_id),
        UpdateExpression="SET availableTickets = availableTickets - :n,"
        " bookedTickets = bookedTickets + :n",
        ExpressionAttributeValues={":n": {"N": str(count)}},
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarise(phase: str, samples: list[Sample], duration: float) -> dict[str, Any]:
    expected = PHASES[phase][0]
    mine = [s for s in samples if s.phase == phase]
    good = [s for s in mine if s.outcome == expected]
    latencies = [s.seconds * 1000 for s in good]
    return {
        "calls": len(mine),
        "outcomes": dict(Counter(s.outcome for s in mine)),
        "seconds": round(duration, 3),
        "per_second": round(len(good) / duration, 1) if duration else None,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "requests_per_call": round(statistics.fmean(s.requests for s in good), 3) if good else None,
        "requests_min_max": [min(s.requests for s in good), max(s.requests for s in good)]
        if good
        else None,
        "wcu_per_call": round(statistics.fmean(s.write_units for s in good), 3) if good else None,
        "rcu_per_call": round(statistics.fmean(s.read_units for s in good), 3) if good else None,
    }


def slice_costs(samples: list[Sample], phase: str, first: int) -> dict[str, Any]:
    """The successful bookings of ``phase``, numbered from ``first`` in the event."""
    chosen = [s for s in samples if s.phase == phase and s.outcome == "BOOKED"]
    return {
        "bookings": f"{first}-{first + len(chosen) - 1}",
        "outcomes": dict(Counter(s.outcome for s in samples if s.phase == phase)),
        "p50_ms": round(percentile([s.seconds * 1000 for s in chosen], 50), 2),
        "p95_ms": round(percentile([s.seconds * 1000 for s in chosen], 95), 2),
        "requests_per_booking": round(statistics.fmean(s.requests for s in chosen), 3),
        "wcu_per_booking": round(statistics.fmean(s.write_units for s in chosen), 3),
    }


def check_correctness(endpoint: str, table: str, event_id: int, tickets: int) -> dict[str, Any]:
    from chalicelib.audit import audit_event
    from chalicelib.models import BOOKED, WAITLISTED
    from chalicelib.storage import TicketStore

    store = TicketStore(local_client(endpoint), table)
    event, places = store.event_partition(event_id)
    assert event is not None
    booked = [p for p in places if p.status == BOOKED]
    waiting = sorted(p.wait_key or 0 for p in places if p.status == WAITLISTED)
    promoted = sorted(
        p.promoted_from_wait_key for p in booked if p.promoted_from_wait_key is not None
    )
    violations = audit_event(store, event_id)
    in_order = not (promoted and waiting and promoted[-1] > waiting[0])
    return {
        "tickets": tickets,
        "tickets_sold": len(booked),
        "oversold": max(0, len(booked) - tickets),
        "counters": {
            "available": event.available_tickets,
            "booked": event.booked_tickets,
            "waiting": event.waiting_list_count,
        },
        "promoted": len(promoted),
        "waiting_list_served_in_order": in_order,
        "audit_violations": [v.to_json() for v in violations],
        "ok": len(booked) == tickets and not violations and in_order,
    }


def cold_start(repeats: int = 3) -> dict[str, Any]:
    """Median time to import the app in a fresh interpreter, against chalice + boto3 alone."""

    def median_seconds(code: str) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    bare = median_seconds("pass")
    app = median_seconds("import app")
    deps = median_seconds("import chalice, boto3")
    return {
        "interpreter_ms": round(bare * 1000, 1),
        "import_app_ms": round((app - bare) * 1000, 1),
        "import_chalice_boto3_ms": round((deps - bare) * 1000, 1),
        "app_overhead_ms": round((app - deps) * 1000, 1),
    }


def package_size() -> dict[str, Any]:
    from devtools.package import package

    with tempfile.TemporaryDirectory() as out:
        package(Path(out))
        size = (Path(out) / "deployment.zip").stat().st_size
    return {"deployment_zip_bytes": size, "deployment_zip_kib": round(size / 1024, 1)}


def plot(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 5))
    for phase in (p for p in PHASES if not p.startswith("warmup")):
        values = sorted(
            s.seconds * 1000 for s in samples if s.phase == phase and s.outcome == PHASES[phase][0]
        )
        if values:
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            axis.plot(values, fractions, label=f"{phase} (n={len(values)})")
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms, log scale)")
    axis.set_ylabel("fraction of calls at or below")
    axis.set_title("Flash sale on DynamoDB Local: latency per operation (CDF)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_table(report: dict[str, Any]) -> None:
    rows = report["operations"]
    header = (
        f"{'operation':<16}{'calls':>7}{'ok/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'req/op':>8}{'WCU/op':>8}{'RCU/op':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        print(
            f"{name:<16}{row['calls']:>7}{row['per_second'] or 0:>9.1f}{row['p50_ms']:>9.2f}"
            f"{row['p95_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['requests_per_call'] or 0:>8.2f}"
            f"{row['wcu_per_call'] or 0:>8.2f}{row['rcu_per_call'] or 0:>8.2f}"
        )
    print()
    print(
        f"service/baseline booking throughput: {report['service_to_baseline']:.2f}"
        f"  (target >= 0.85)"
    )
    for row in report.get("large_event", {}).get("slices", []):
        print(
            f"large event, bookings {row['bookings']:>11}: p50 {row['p50_ms']:.2f} ms,"
            f" p95 {row['p95_ms']:.2f} ms, {row['requests_per_booking']:.2f} requests,"
            f" {row['wcu_per_booking']:.2f} WCU per booking"
        )
    correctness = report["correctness"]
    print(
        f"correctness: sold {correctness['tickets_sold']}/{correctness['tickets']},"
        f" oversold {correctness['oversold']}, promoted {correctness['promoted']},"
        f" waiting list in order: {correctness['waiting_list_served_in_order']},"
        f" audit violations: {len(correctness['audit_violations'])}"
    )
    if "cold_start" in report:
        cold = report["cold_start"]
        print(
            f"cold start: import app {cold['import_app_ms']} ms vs chalice+boto3"
            f" {cold['import_chalice_boto3_ms']} ms (app's own: {cold['app_overhead_ms']} ms);"
            f" deployment zip {report['package']['deployment_zip_kib']} KiB"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from chalicelib import booking
    from chalicelib.storage import TicketStore

    if args.users < args.tickets + args.cancels:
        raise SystemExit("--users must be at least --tickets + --cancels (so cancels promote)")
    table = "bench"
    with DynamoDBLocal() as database:
        client = local_client(database.endpoint_url)
        create_table_if_missing(client, table)
        store = TicketStore(client, table)
        event = booking.create_event(store, "Flash sale", args.tickets)
        warm = [f"warm{i:06d}@example.com" for i in range(args.warmup)]
        warm_event = booking.create_event(store, "Warm-up", max(1, args.warmup))
        for counter, tickets in (("BASELINE", args.tickets), ("WARMUP_BASELINE", args.warmup)):
            client.put_item(
                TableName=table,
                Item={
                    "PK": {"S": counter},
                    "SK": {"S": "COUNTER"},
                    "availableTickets": {"N": str(tickets)},
                },
            )
        emails = [f"fan{i:06d}@example.com" for i in range(args.users)]
        buyers, waiters = emails[: args.tickets], emails[args.tickets :]
        quarter = args.tickets // 4
        quarters = [
            slice(i * quarter, args.tickets if i == 3 else (i + 1) * quarter) for i in range(4)
        ]
        # Warm-up first (DynamoDB Local's JVM compiles its hot paths during the
        # first thousands of requests), then the baseline right before the
        # service's own flash sale, so both meet the same warmed-up database.
        phases: list[Job] = [
            ("warmup", warm_event.event_id, warm),
            ("warmup_baseline", 0, warm),
            # Baseline and service alternate in ABBA blocks, so that a database
            # still warming up (or any drift) weighs on both sides equally.
            *[
                (f"{kind}_{block}", event.event_id if kind == "book" else 0, buyers[part])
                for block, part in enumerate(quarters)
                for kind in (("baseline", "book") if block % 2 == 0 else ("book", "baseline"))
            ],
            ("waitlist", event.event_id, waiters),
            ("cancel_promote", event.event_id, buyers[: args.cancels]),
        ]
        before: dict[str, Callable[[], None]] = {}
        window = min(1000, args.large_event // 2)
        if args.large_event:
            # Bookings 1..window, then (filled in directly) up to
            # large_event - window, then the last window bookings.
            large = booking.create_event(store, "Large event", args.large_event)
            crowd = [f"crowd{i:06d}@example.com" for i in range(2 * window)]
            phases += [
                ("large_first", large.event_id, crowd[:window]),
                ("large_last", large.event_id, crowd[window:]),
            ]
            before["large_last"] = partial(
                prefill_bookings, client, table, large.event_id, args.large_event - 2 * window
            )
        samples, durations = run_phases(
            database.endpoint_url, table, args.processes, phases, before
        )
        correctness = check_correctness(database.endpoint_url, table, event.event_id, args.tickets)

    phase_seconds = {phase: round(seconds, 3) for phase, seconds in durations.items()}
    for kind in ("baseline", "book"):  # the ABBA blocks count as one phase each
        blocks = [phase for phase in list(durations) if phase.startswith(f"{kind}_")]
        durations[kind] = sum(durations.pop(phase) for phase in blocks)
        for sample in samples:
            if sample.phase in blocks:
                sample.phase = kind
    operations = {
        phase: summarise(phase, samples, durations[phase])
        for phase in durations
        if not phase.startswith(("warmup", "large"))
    }
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "database": "DynamoDB Local (in memory), same machine",
        },
        "parameters": vars(args) | {"out": str(args.out)},
        "operations": operations,
        "service_to_baseline": round(
            operations["book"]["per_second"] / operations["baseline"]["per_second"], 3
        ),
        "correctness": correctness,
        "phase_seconds": phase_seconds,
    }
    if args.large_event:
        report["large_event"] = {
            "tickets": args.large_event,
            "slices": [
                slice_costs(samples, "large_first", 1),
                slice_costs(samples, "large_last", args.large_event - window + 1),
            ],
        }
    if not args.skip_cold_start:
        report["cold_start"] = cold_start()
        report["package"] = package_size()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flash-sale.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(samples, args.out / "latency.png")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--users", type=int, default=1600)
    parser.add_argument("--cancels", type=int, default=200)
    parser.add_argument("--large-event", type=int, default=10000, help="0 to skip")
    parser.add_argument("--warmup", type=int, default=1500, help="unmeasured calls first")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    print_table(report)
    print(
        f"\nresults: {args.out / 'flash-sale.json'}, {args.out / 'latency.png'}"
        f" ({time.perf_counter() - started:.0f} s)"
    )
    return 0 if report["correctness"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

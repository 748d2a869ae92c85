"""``make bench-waitlist``: what waiting-list operations cost as one event's list grows.

    make bench-waitlist [WAITLIST_ARGS="--checkpoints 100,1000 --ops 20"]

One event, sold out to its ticket holders, gets a waiting list filled directly
(``BatchWriteItem`` of the very items a join writes: places with their wait key,
the position index's counts, the event's counters) to each checkpoint in turn,
and the fill is checked with the audit. At each checkpoint the real Chalice app
(``devtools.harness.LambdaInstance``, the events API Gateway sends) is invoked,
one call at a time, for each operation:

* ``join``: a new person books the sold-out event;
* ``standing_head`` / ``standing_tail``: the first and the last person waiting
  ask for their standing;
* ``leave_middle``: people from the middle of the list cancel (leave);
* ``cancel_promote``: ticket holders cancel, each promoting the head.

Every DynamoDB request and its consumed capacity is counted
(``devtools.harness.RequestMeter``). Results: a table on stdout,
``waitlist-scale.json`` (per checkpoint and operation: ``requests``, ``rcu``,
``wcu`` as means per call, ``p50_ms``, ``p95_ms``) and ``waitlist-scale.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib import booking
from chalicelib.audit import audit_event
from chalicelib.clock import now_iso, wait_key_now
from chalicelib.models import Place, Status
from chalicelib.storage import TicketStore, items, ranks, schema
from devtools.bench.report import percentile
from devtools.bench.scenario import prefill_bookings
from devtools.dynamodb_local import LOCAL_CREDENTIALS, ROOT, DynamoDBLocal, local_client
from devtools.harness import LambdaInstance, RequestMeter
from devtools.issuer import LocalIssuer
from devtools.synthetic import batch_put
from devtools.tables import create_table_if_missing

TABLE = "bench-waitlist"
OPERATIONS = ("join", "standing_head", "standing_tail", "leave_middle", "cancel_promote")
#: What each operation must answer to count as a measurement.
EXPECTED = {
    "join": (202, "WAITLISTED"),
    "standing_head": (200, "WAITLISTED"),
    "standing_tail": (200, "WAITLISTED"),
    "leave_middle": (200, "WAITLISTED"),
    "cancel_promote": (200, "PROMOTED"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.bench.waitlist",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoints", default="100,1000,10000,100000")
    parser.add_argument("--ops", type=int, default=30, help="calls per operation and checkpoint")
    parser.add_argument("--warmup", type=int, default=60, help="unmeasured calls of each first")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return parser.parse_args(argv)


@dataclass
class Sample:
    operation: str
    ok: bool
    seconds: float
    requests: int
    rcu: float
    wcu: float


@dataclass
class WaitingList:
    """The service's event and who waits, in order, as this benchmark made it."""

    event_id: int
    holders: deque[str]
    waiting: deque[str] = field(default_factory=deque)
    filled: int = 0


def sold_out_event(store: TicketStore, holders: int, cap: int) -> WaitingList:
    """A new event whose ``holders`` tickets are all booked (directly, like a fill)."""
    event = booking.create_event(store, "Waiting-list scale", holders, "bench", cap)
    prefill_bookings(store.client, store.table_name, event.event_id, holders)
    emails = deque(f"filler{i:06d}@example.com" for i in range(holders))
    return WaitingList(event.event_id, emails)


def fill(client: Any, table: str, line: WaitingList, target: int) -> float:
    """Put people on the list directly until ``target`` wait; returns the seconds taken.

    The items are the ones a join writes: the place (``items.place_to_item``), one
    count along its key's path in the position index, and the event's counters.
    Keys are consecutive milliseconds from the last one, as a rush would make them.
    """
    started = time.perf_counter()
    count = target - len(line.waiting)
    if count <= 0:
        return 0.0
    event = TicketStore(client, table).get_event(line.event_id)
    assert event is not None
    # After every key the service gave out (its joins used the clock), like a rush.
    now, first = now_iso(), max(event.last_wait_key, wait_key_now() - count)
    new = [(f"filled{line.filled + i:07d}@example.com", first + 1 + i) for i in range(count)]
    batch_put(
        client,
        table,
        (
            items.place_to_item(Place(line.event_id, email, Status.WAITLISTED, wait_key=key), now)
            for email, key in new
        ),
    )
    # ADD, not put: the nodes already hold the counts of earlier fills and joins.
    for node, children in ranks.counts_for(key for _, key in new).items():
        names = {f"#c{child}": ranks.cell(child) for child in children}
        client.update_item(
            TableName=table,
            Key=schema.rank_node_key(line.event_id, node),
            UpdateExpression="ADD " + ", ".join(f"#c{c} :n{c}" for c in children),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":n{c}": items.number(n) for c, n in children.items()},
        )
    client.update_item(
        TableName=table,
        Key=schema.event_key(line.event_id),
        UpdateExpression="SET waitingCount = waitingCount + :n, lastWaitKey = :last",
        ExpressionAttributeValues={":n": items.number(count), ":last": items.number(new[-1][1])},
    )
    line.waiting.extend(email for email, _ in new)
    line.filled += count
    return time.perf_counter() - started


class Runner:
    """Invokes the app for one person and measures the call."""

    def __init__(self, issuer: LocalIssuer, line: WaitingList) -> None:
        self.meter = RequestMeter()
        self.app = LambdaInstance(self.meter)
        self.issuer = issuer
        self.line = line

    def call(self, operation: str, email: str) -> Sample:
        token = self.issuer.token(email)  # minted before the clock starts
        event_id = self.line.event_id
        self.meter.reset()
        started = time.perf_counter()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            if operation.startswith("standing"):
                status, body = self.app.invoke(
                    "GET",
                    f"/events/{event_id}/standing",
                    resource="/events/{eventId}/standing",
                    path_parameters={"eventId": str(event_id)},
                    token=token,
                )
            else:
                path = "/book" if operation == "join" else "/cancel"
                status, body = self.app.invoke("POST", path, {"eventId": event_id}, token=token)
        seconds = time.perf_counter() - started
        answer = body.get("status")
        if operation == "cancel_promote":
            answer = "PROMOTED" if body.get("ticketPassedToWaitingList") else answer
        elif operation == "leave_middle":
            answer = body.get("previousStatus")
        ok = (status, answer) == EXPECTED[operation]
        meter = self.meter
        return Sample(
            operation, ok, seconds, meter.total, round(meter.read_units, 3), meter.write_units
        )


def measure_checkpoint(runner: Runner, ops: int) -> list[Sample]:
    """``ops`` calls of each operation, keeping ``runner.line`` in step with the table."""
    line = runner.line
    samples: list[Sample] = []
    joiners = [f"joiner{line.filled + i:07d}@example.com" for i in range(ops)]
    line.filled += ops
    for email in joiners:
        samples.append(runner.call("join", email))
        line.waiting.append(email)
    samples += [runner.call("standing_head", line.waiting[0]) for _ in range(ops)]
    samples += [runner.call("standing_tail", line.waiting[-1]) for _ in range(ops)]
    middle = len(line.waiting) // 2
    leavers = list(line.waiting)[middle : middle + ops]
    for email in leavers:
        samples.append(runner.call("leave_middle", email))
        line.waiting.remove(email)
    for _ in range(ops):
        samples.append(runner.call("cancel_promote", line.holders.popleft()))
        line.holders.append(line.waiting.popleft())
    return samples


def summarise(samples: list[Sample]) -> dict[str, Any]:
    good = [s for s in samples if s.ok]
    latencies = [s.seconds * 1000 for s in good]

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 3) if values else None

    return {
        "calls": len(samples),
        "failed": len(samples) - len(good),
        "requests": mean([s.requests for s in good]),
        "rcu": mean([s.rcu for s in good]),
        "wcu": mean([s.wcu for s in good]),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
    }


def run(args: argparse.Namespace, progress: Callable[[str], None] = print) -> dict[str, Any]:
    checkpoints = [int(n) for n in args.checkpoints.split(",")]
    holders_needed = args.ops * len(checkpoints) + 1
    report: dict[str, Any] = {"checkpoints": {}, "fill_seconds": {}, "audit_seconds": {}}
    with DynamoDBLocal() as database, tempfile.TemporaryDirectory() as issuer_directory:
        issuer = LocalIssuer(Path(issuer_directory))
        os.environ.update(LOCAL_CREDENTIALS | issuer.environment)
        os.environ.update(
            {
                schema.TABLE_NAME_ENV: TABLE,
                schema.ENDPOINT_URL_ENV: database.endpoint_url,
                "LOG_LEVEL": "WARNING",
            }
        )
        client = local_client(database.endpoint_url)
        create_table_if_missing(client, TABLE)
        store = TicketStore(client, TABLE)
        if args.warmup:
            # DynamoDB Local's JVM compiles its hot paths during the first calls.
            warm = sold_out_event(store, args.warmup + 1, 3 * args.warmup + 1)
            fill(client, TABLE, warm, 2 * args.warmup + 1)
            measure_checkpoint(Runner(issuer, warm), args.warmup)
        line = sold_out_event(store, holders_needed, 2 * max(checkpoints))
        runner = Runner(issuer, line)
        event = store.get_event(line.event_id)
        assert event is not None
        for checkpoint in checkpoints:
            report["fill_seconds"][checkpoint] = round(fill(client, TABLE, line, checkpoint), 1)
            started = time.perf_counter()
            violations = audit_event(store, event.event_id)
            report["audit_seconds"][checkpoint] = round(time.perf_counter() - started, 1)
            if violations:
                raise SystemExit(f"the fill at {checkpoint} broke an invariant: {violations}")
            samples = measure_checkpoint(runner, args.ops)
            report["checkpoints"][checkpoint] = {
                op: summarise([s for s in samples if s.operation == op]) for op in OPERATIONS
            }
            progress(f"checkpoint {checkpoint}: measured ({len(line.waiting)} waiting)")
        final = audit_event(store, event.event_id)
        report["final_audit_clean"] = not final
    report["ratios"] = ratios(report["checkpoints"], checkpoints[0], checkpoints[-1])
    return report


def ratios(table: dict[int, Any], low: int, high: int) -> dict[str, dict[str, float | None]]:
    """Each figure at the longest list divided by the same figure at the shortest."""
    result: dict[str, dict[str, float | None]] = {}
    for op in OPERATIONS:
        result[op] = {}
        for figure in ("requests", "rcu", "wcu", "p50_ms"):
            a, b = table[low][op][figure], table[high][op][figure]
            result[op][figure] = round(b / a, 2) if a else (1.0 if a == b else None)
    return result


def print_table(report: dict[str, Any]) -> None:
    print(f"{'waiting':>8} {'operation':<15}{'req/op':>8}{'RCU/op':>8}{'WCU/op':>8}", end="")
    print(f"{'p50 ms':>9}{'p95 ms':>9}{'failed':>7}")
    for checkpoint, operations in report["checkpoints"].items():
        for op, row in operations.items():
            print(
                f"{checkpoint:>8} {op:<15}{row['requests']:>8}{row['rcu']:>8}{row['wcu']:>8}"
                f"{row['p50_ms']:>9}{row['p95_ms']:>9}{row['failed']:>7}"
            )
    print("\nratio, longest list / shortest list:")
    for op, figures in report["ratios"].items():
        print(f"  {op:<15}" + "  ".join(f"{k} {v}" for k, v in figures.items()))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = [int(c) for c in report["checkpoints"]]
    figure, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    for axis, figure_name in zip(axes, ("requests", "rcu", "wcu", "p50_ms"), strict=True):
        for op in OPERATIONS:
            values = [report["checkpoints"][c][op][figure_name] for c in report["checkpoints"]]
            axis.plot(checkpoints, values, marker="o", label=op)
        axis.set_xscale("log")
        axis.set_xlabel("people waiting (log scale)")
        axis.set_title(f"{figure_name} per call")
        axis.set_ylim(bottom=0)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("Waiting-list operations against list length (DynamoDB Local)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args, progress=lambda line: print(line, file=sys.stderr))
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "waitlist-scale.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "waitlist-scale.png")
    print_table(report)
    print(f"\nresults: {args.out / 'waitlist-scale.json'}, {args.out / 'waitlist-scale.png'}")
    print(f"fill s: {report['fill_seconds']}, audit s: {report['audit_seconds']}")
    print(f"total {report['seconds']} s; final audit clean: {report['final_audit_clean']}")
    failed = any(row["failed"] for ops in report["checkpoints"].values() for row in ops.values())
    return 0 if report["final_audit_clean"] and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""How the audit scales: fill DynamoDB Local with big events, time the audit, extrapolate.

    python -m devtools.audit_scale                        # 1,000 events x 1,000 places
    python -m devtools.audit_scale --events 50 --places 200 --big 0
    python -m devtools.audit_scale --all        # also audit every event, as the queue would

Not a test: it prints figures. It starts its own DynamoDB Local in memory
(``--endpoint`` uses a running one instead), writes the events straight into
the table with the service's item mapping (``devtools.synthetic``: a third of
each event's places waiting), then measures

* the fan-out: listing every event id from ``EventsByNewest`` and building one
  message per event (what the hourly function does, minus the SQS calls);
* the audit of a sample of events, one step each with the worker's page size,
  and of one ``--big`` event (the issue's case: 20,000 places);

and extrapolates what one worker invocation (``fanout`` budget: its timeout
minus the reserve it keeps) gets through. DynamoDB Local is not DynamoDB: the
times are this machine's, the read units are what DynamoDB would charge.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.audit import Budget, EventVerdict, audit_step, audit_to_end, fanout
from chalicelib.audit.cursor import EventCursor
from chalicelib.storage import TicketStore
from devtools.dynamodb_local import DynamoDBLocal, local_client
from devtools.synthetic import write_event
from devtools.tables import create_table_if_missing

DEFAULT_TABLE = "audit-scale"
WORKER_TIMEOUT_S = 120  # .chalice/config.json, audit_worker


class CapacityMeter:
    """Read units of every Query, as DynamoDB reports them (``ReturnConsumedCapacity``)."""

    def __init__(self, client: Any) -> None:
        self.units = 0.0
        self.queries = 0
        client.meta.events.register("provide-client-params.dynamodb.Query", self._ask)
        client.meta.events.register("after-call.dynamodb.Query", self._count)

    def _ask(self, params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "TOTAL"

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.queries += 1
        self.units += float(parsed.get("ConsumedCapacity", {}).get("CapacityUnits", 0))


def fill(endpoint: str, table: str, events: int, places: int, writers: int) -> float:
    """Write ``events`` events of ``places`` places (ids 1..events); seconds taken."""

    def write(first: int) -> None:
        client = local_client(endpoint)  # one per thread
        for event_id in range(first, events + 1, writers):
            write_event(client, table, event_id, places)
            if event_id % max(1, events // 10) == 0:
                print(f"  written event {event_id}/{events}", file=sys.stderr)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(write, range(1, writers + 1)))
    return time.perf_counter() - started


def time_fan_out(store: TicketStore) -> dict[str, Any]:
    """What the hourly function does but the SQS calls: list every id, build every message."""
    started = time.perf_counter()
    ids = list(store.event_ids())
    bodies = [json.dumps(EventCursor.start(i).to_json()) for i in ids]
    seconds = time.perf_counter() - started
    return {
        "events": len(ids),
        "seconds": round(seconds, 3),
        "sendMessageBatchCalls": -(-len(bodies) // fanout.SEND_BATCH_SIZE),
        "largestMessageBytes": max((len(b) for b in bodies), default=0),
    }


def time_audit(store: TicketStore, meter: CapacityMeter, event_id: int) -> dict[str, Any]:
    """One event in one step with the worker's page size (no time limit)."""
    budget = Budget(page_size=fanout.WORKER_PAGE_SIZE, max_pages=10**9)
    units_before, started = meter.units, time.perf_counter()
    outcome = audit_step(store, EventCursor.start(event_id), budget)
    seconds = time.perf_counter() - started
    assert isinstance(outcome, EventVerdict)
    return {
        "eventId": event_id,
        "clean": outcome.clean,
        "items": outcome.items,
        "pages": outcome.pages,
        "seconds": seconds,
        "readUnits": meter.units - units_before,
    }


def largest_cursor(store: TicketStore, event_id: int) -> int:
    """Bytes of the biggest continuation message auditing ``event_id`` page by page."""
    largest = 0
    outcome: EventCursor | EventVerdict = EventCursor.start(event_id)
    while isinstance(outcome, EventCursor):
        largest = max(largest, len(json.dumps(outcome.to_json())))
        outcome = audit_step(store, outcome, Budget(page_size=fanout.WORKER_PAGE_SIZE, max_pages=1))
    return largest


def measure(args: argparse.Namespace, endpoint: str) -> dict[str, Any]:
    """Fill the table, time the fan-out and the audits, and extrapolate (the printed figures)."""
    client = local_client(endpoint)
    create_table_if_missing(client, args.table)
    store = TicketStore(client, args.table)
    meter = CapacityMeter(client)
    print(f"filling {args.events} events x {args.places} places ...", file=sys.stderr)
    fill_seconds = fill(endpoint, args.table, args.events, args.places, args.writers)
    big_id = args.events + 1
    if args.big:
        write_event(client, args.table, big_id, args.big)

    fan_out = time_fan_out(store)
    step = max(1, args.events // args.sample)
    sample = [time_audit(store, meter, i) for i in range(1, args.events + 1, step)]
    big = time_audit(store, meter, big_id) if args.big else None
    per_item = sum(s["seconds"] for s in sample) / sum(s["items"] for s in sample)
    usable_s = WORKER_TIMEOUT_S - fanout.WORKER_RESERVE_MS / 1000
    result: dict[str, Any] = {
        "table": {"events": args.events, "placesPerEvent": args.places, "bigEvent": args.big},
        "fillSeconds": round(fill_seconds, 1),
        "fanOut": fan_out,
        "auditOfOneEvent": {
            "sampled": len(sample),
            "itemsRead": sample[0]["items"],
            "pages": sample[0]["pages"],
            "medianSeconds": round(statistics.median(s["seconds"] for s in sample), 3),
            "maxSeconds": round(max(s["seconds"] for s in sample), 3),
            "readUnits": round(statistics.mean(s["readUnits"] for s in sample), 1),
            "allClean": all(s["clean"] for s in sample),
        },
        "bigEvent": big and {k: round(v, 3) if isinstance(v, float) else v for k, v in big.items()},
        "largestCursorBytes": largest_cursor(store, big_id if args.big else 1),
        "extrapolated": {
            "itemsPerSecond": round(1 / per_item),
            "workerUsableSeconds": usable_s,
            # Whichever ends a worker's step first: its time, or its page budget.
            "itemsPerInvocationByTime": round(usable_s / per_item),
            "itemsPerInvocationByPages": fanout.WORKER_MAX_PAGES * fanout.WORKER_PAGE_SIZE,
            "wholeTableSecondsOneWorker": round(per_item * args.events * sample[0]["items"]),
            "wholeTableSecondsTenWorkers": round(per_item * args.events * sample[0]["items"] / 10),
        },
    }
    if args.all:
        started, units_before = time.perf_counter(), meter.units
        verdicts = [
            audit_to_end(store, i, Budget(fanout.WORKER_PAGE_SIZE, 10**9))
            for i in range(1, args.events + 1)
        ]
        result["allEventsAudited"] = {
            "events": len(verdicts),
            "clean": all(v.clean for v in verdicts),
            "seconds": round(time.perf_counter() - started, 1),
            "readUnits": round(meter.units - units_before),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--places", type=int, default=1000)
    parser.add_argument(
        "--big", type=int, default=20_000, help="places of one extra event (0: none)"
    )
    parser.add_argument("--sample", type=int, default=20, help="events timed one by one")
    parser.add_argument("--writers", type=int, default=4, help="threads filling the table")
    parser.add_argument("--all", action="store_true", help="also audit every event, one by one")
    parser.add_argument("--endpoint", help="a running DynamoDB Local (default: start one)")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    args = parser.parse_args(argv)
    if args.endpoint:
        result = measure(args, args.endpoint)
    else:
        with DynamoDBLocal() as database:
            result = measure(args, database.endpoint_url)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

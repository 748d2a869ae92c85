"""Why contended cancellations and joins cost what they cost: a quick lab on DynamoDB Local.

    python -m devtools.race_lab                          # 8 processes cancel 25 tickets each
    python -m devtools.race_lab --operation join --per-process 50
    python -m devtools.race_lab --operation ordered [--window-ms 100]

Not a test and not ``make bench``: it calls the domain functions
(``booking.cancel_booking``, ``booking.book_ticket``) directly, without the app,
so a run takes seconds and isolates the race itself. Every process starts at one
barrier and works on the same event:

* ``cancel``: the event is sold out with more people waiting than tickets, and
  every process cancels its share of the tickets, so every cancellation promotes
  the head of the list (by name, or by count once a race is lost);
* ``book``: the yardstick: every process books its share of the event's free
  tickets (the event item is just as hot, but no condition is raced for);
* ``join``: the event is sold out, and every process joins the waiting list for
  its share of new people;
* ``ordered``: the yardstick for joins: no service code, only the race a join
  runs. Each operation is one bare ``UpdateItem`` of one item, on the condition
  that its key (the wait-key clock, as a join takes it) is above the last one
  written, retried on refusal with a key above the one DynamoDB returns. With
  ``--window-ms W`` only keys of different windows of W milliseconds are
  ordered (what a design that let joins of one window commit in any order
  would pay; see docs/data-model.md, "Joins that race").

For each operation it records the wall time, the DynamoDB requests and the time
spent backing off, and for joins why a refused join was refused: the same key as
the last one committed, or a key below it, split by the attempts' send times
(botocore's ``before-send``): the winner was sent first though its key is
higher (the delay was before the send, in this process), or the refused join
was sent first and committed after the winner (everything after the hook: the
socket, the database's threads and its order). It prints the distribution, then
(except for ``ordered``) audits the event (``audit_clean``), settles the
promotions made by count (``settled_after``: what the stream handler does in AWS
and under ``make dev``) and audits it again (``audit_clean_after_settling``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import booking
from chalicelib.audit import audit_events
from chalicelib.clock import wait_key_now
from chalicelib.errors import ConditionFailed, ServiceBusy
from chalicelib.storage import TicketStore
from devtools.bench.report import percentile
from devtools.dynamodb_local import DynamoDBLocal, local_client
from devtools.harness import RequestMeter
from devtools.tables import create_table_if_missing

TABLE = "race-lab"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.race_lab",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--operation", choices=("cancel", "book", "join", "ordered"), default="cancel"
    )
    parser.add_argument(
        "--window-ms", type=int, default=0, help="ordered: order only keys of different windows"
    )
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--per-process", type=int, default=25)
    return parser.parse_args(argv)


class _Recorder:
    """One process's store, instrumented: requests, back-off time, why joins were refused."""

    def __init__(self, endpoint: str) -> None:
        client = local_client(endpoint, retries={"max_attempts": 1})
        self.meter = RequestMeter().attach(client)
        self.store = TicketStore(client, TABLE)
        self.slept = 0.0
        self.refusals: Counter[str] = Counter()
        self.gaps_ms: list[int] = []
        # Each join attempt: (its key, when it was sent (ns), the key that beat it or None).
        self.attempts: list[tuple[int, int, int | None]] = []
        self.sent_ns = 0

        def sent(**_: Any) -> None:
            self.sent_ns = time.time_ns()

        client.meta.events.register("before-send.dynamodb.TransactWriteItems", sent)
        real_sleep = self.store.retry.sleep

        def sleep(seconds: float) -> None:
            self.slept += seconds
            real_sleep(seconds)

        self.store.retry.sleep = sleep
        join = self.store.join_waitlist

        def join_and_classify(event_id: int, email: str, wait_key: int, *rest: Any) -> None:
            try:
                join(event_id, email, wait_key, *rest)
                self.attempts.append((wait_key, self.sent_ns, None))
            except ConditionFailed as failure:
                event = failure.old_event
                if event is None or event.available_tickets:
                    self.refusals["other"] += 1
                elif event.last_wait_key == wait_key:
                    self.refusals["same key"] += 1
                elif event.last_wait_key > wait_key:
                    self.attempts.append((wait_key, self.sent_ns, event.last_wait_key))
                    self.gaps_ms.append(event.last_wait_key - wait_key)
                else:
                    self.refusals["other"] += 1
                raise

        self.store.join_waitlist = join_and_classify  # type: ignore[method-assign]


def _worker(
    endpoint: str,
    args: argparse.Namespace,
    event_id: int,
    emails: list[str],
    barrier: Any,
    out: Any,
) -> None:
    recorder = _Recorder(endpoint)
    samples = []
    barrier.wait()
    for email in emails:
        recorder.meter.reset()
        recorder.slept = 0.0
        started = time.perf_counter()
        failed = False
        try:
            if args.operation == "ordered":
                _ordered_write(recorder, args.window_ms)
            elif args.operation == "cancel":
                booking.cancel_booking(recorder.store, event_id, email)
            elif args.operation == "book":
                booking.book_ticket(recorder.store, event_id, email)
            else:
                booking.book_ticket(recorder.store, event_id, email)
        except ServiceBusy:
            failed = True
        seconds = time.perf_counter() - started
        samples.append((seconds, recorder.meter.total, recorder.slept, failed))
    out.put((samples, dict(recorder.refusals), recorder.gaps_ms, recorder.attempts))


ORDER_KEY = {"PK": {"S": "LAB#ORDER"}, "SK": {"S": "ORDER"}}


def _ordered_write(recorder: _Recorder, window_ms: int) -> None:
    """One write ordered by the client's clock, as a join's ``joins_after_last`` is,
    and nothing else: ``lastKey < :key`` (with a window, ``lastKey < :window``, and
    the write closes every earlier window). A refusal returns the item, and the
    next attempt takes a key above it, as a refused join does."""
    known = 0
    for _ in range(booking.MAX_DECISION_ROUNDS):
        key = max(wait_key_now() // max(window_ms, 1), known + 1)
        written = key - 1 if window_ms else key
        try:
            recorder.store.client.update_item(
                TableName=TABLE,
                Key=ORDER_KEY,
                UpdateExpression="SET lastKey = :written",
                ConditionExpression="lastKey < :key",
                ExpressionAttributeValues={
                    ":key": {"N": str(key)},
                    ":written": {"N": str(written)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old: dict[str, Any] = dict(error.response).get("Item", {})
            known = int(old["lastKey"]["N"])
            winners_key = known + 1 if window_ms else known
            recorder.refusals["same key" if winners_key == key else "key below the last"] += 1
    raise ServiceBusy("the ordered write kept losing")


def _why_keys_below(attempts: list[tuple[int, int, int | None]]) -> Counter[str]:
    """Split the joins refused with a key below the last by where the order turned:
    before the send (the winner, with the higher key, passed botocore's
    ``before-send`` first: this process was slower to get there, descheduled say)
    or after it (this join passed the hook first and was committed second: the
    socket, the database's threads, its order of concurrent requests). A lower
    key is the earlier one unless a join ran ahead of the clock (``last + 1``).
    Send times are wall-clock, comparable across processes on one machine."""
    sent_by_key = {key: sent for key, sent, beaten_by in attempts if beaten_by is None}
    why: Counter[str] = Counter()
    for _, sent, beaten_by in attempts:
        if beaten_by is None:
            continue
        winner_sent = sent_by_key.get(beaten_by)
        if winner_sent is None:
            why["key below the last (winner not seen)"] += 1
        elif winner_sent < sent:
            why["key below the last: the winner sent first"] += 1
        else:
            why["key below the last: sent first, committed second"] += 1
    return why


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the event, run the race, and return the figures (also printed)."""
    context = multiprocessing.get_context("spawn")
    count = args.processes * args.per_process
    with DynamoDBLocal() as database:
        client = local_client(database.endpoint_url)
        create_table_if_missing(client, TABLE)
        store = TicketStore(client, TABLE)
        event = booking.create_event(store, "race lab", count, owner_id="race-lab")
        holders = [f"holder{n}@example.com" for n in range(count)]
        people = holders
        if args.operation == "ordered":
            client.put_item(TableName=TABLE, Item={**ORDER_KEY, "lastKey": {"N": "0"}})
        elif args.operation == "book":  # the same setup work as the others: DynamoDB Local warm
            warmup = booking.create_event(store, "warm-up", count * 2 + 50, owner_id="race-lab")
            for n in range(count * 2 + 50):
                booking.book_ticket(store, warmup.event_id, f"warmup{n}@example.com")
        else:
            for email in holders:
                booking.book_ticket(store, event.event_id, email)
            waiting = 10 if args.operation == "join" else count + 50
            for n in range(waiting):
                booking.book_ticket(store, event.event_id, f"waiting{n}@example.com")
        if args.operation in ("join", "ordered"):
            people = [f"joiner{n}@example.com" for n in range(count)]
        barrier, out = context.Barrier(args.processes), context.Queue()
        workers = [
            context.Process(
                target=_worker,
                args=(
                    database.endpoint_url,
                    args,
                    event.event_id,
                    people[n :: args.processes],
                    barrier,
                    out,
                ),
            )
            for n in range(args.processes)
        ]
        for worker in workers:
            worker.start()
        results = [out.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        checks: dict[str, Any] = {}
        if args.operation != "ordered":  # (the ordered writes touch no event)
            checks["audit_clean"] = audit_events(store, [event.event_id]).clean
            checks["settled_after"] = booking.settle_promotions(store, event.event_id)
            checks["audit_clean_after_settling"] = audit_events(store, [event.event_id]).clean
    samples = [sample for result in results for sample in result[0]]
    refusals: Counter[str] = Counter()
    gaps: list[int] = []
    attempts: list[tuple[int, int, int | None]] = []
    for _, counts, result_gaps, result_attempts in results:
        refusals.update(counts)
        gaps += result_gaps
        attempts += result_attempts
    refusals.update(_why_keys_below(attempts))
    millis = [sample[0] * 1000 for sample in samples]
    requests = [sample[1] for sample in samples]
    figures = {
        "operation": args.operation,
        "operations": len(samples),
        "service_busy": sum(1 for sample in samples if sample[3]),
        "requests_per_op": round(statistics.mean(requests), 2),
        "p50_ms": round(percentile(millis, 50), 1),
        "p95_ms": round(percentile(millis, 95), 1),
        "p99_ms": round(percentile(millis, 99), 1),
        "max_ms": round(max(millis), 1),
        "mean_backoff_ms": round(statistics.mean(sample[2] for sample in samples) * 1000, 1),
        "requests_histogram": dict(sorted(Counter(requests).items())),
    }
    figures.update(checks)
    if args.operation == "ordered":
        figures["window_ms"] = args.window_ms
        figures["refused_share"] = round(sum(refusals.values()) / sum(requests), 3)
        figures["refused_writes"] = dict(refusals)
    if args.operation == "join":
        figures["refused_joins"] = dict(refusals)
        figures["mean_key_gap_ms"] = round(statistics.mean(gaps), 1) if gaps else None
    return figures


def main(argv: list[str] | None = None) -> None:
    figures = run(parse_args(argv))
    for name, value in figures.items():
        print(f"{name:>20}  {value}")


if __name__ == "__main__":
    main()

"""The local stand-in for Lambda's stream event source: DynamoDB Local's stream, polled.

    python -m devtools.stream_poller --endpoint http://127.0.0.1:8001 --table ticket-booking-local

``make dev`` runs this next to the API. It reads the table's stream through the
Streams API (``DescribeStream``, ``GetShardIterator``, ``GetRecords``), turns each
page of records into the event Lambda would deliver, and invokes the same
handler the deployed function runs (``app.notify_changes``). A record the
handler reports failed (``batchItemFailures``) is read again on the next poll,
from that record on, as Lambda would retry it.

It also stands in for the webhook queue's event source: deliveries that come
due in the in-process queue (``chalicelib.webhooks``) are handed to
``app.deliver_webhooks`` as SQS-shaped events.

Where it has got to is kept per stream in a checkpoint file (under
``.dynamodb/``, next to the data, outside what the dev server's reloader
watches), so a restart neither repeats nor skips records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from devtools.dynamodb_local import LOCAL_CREDENTIALS

#: What Lambda would hand the function in one invocation at most.
BATCH_SIZE = 100
#: Seconds between polls when the stream has nothing new.
IDLE_INTERVAL = 0.5
#: A record that fails this many times in a row is skipped, as Lambda gives up on one
#: after its retry attempts (and, in AWS, sends it to the on-failure queue).
MAX_ATTEMPTS = 10

Handler = Callable[[dict[str, Any], Any], Any]


def lambda_context(function_name: str, timeout_ms: int = 60_000) -> SimpleNamespace:
    """Enough of a Lambda context for the handlers (request id, remaining time)."""
    deadline = time.monotonic() + timeout_ms / 1000
    return SimpleNamespace(
        function_name=function_name,
        memory_limit_in_mb=512,
        aws_request_id=str(uuid.uuid4()),
        invoked_function_arn=f"arn:aws:lambda:local:000000000000:function:{function_name}",
        get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)),
    )


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from ``GetRecords`` as Lambda delivers it (times in epoch seconds)."""
    change = dict(record["dynamodb"])
    moment = change.get("ApproximateCreationDateTime")
    if hasattr(moment, "timestamp"):
        change["ApproximateCreationDateTime"] = float(moment.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", "local"),
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


class Checkpoint:
    """The last handled sequence number per shard of one stream, in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, dict[str, str]] = {}
        if path is not None and path.exists():
            try:
                self.data = json.loads(path.read_text())
            except (OSError, ValueError):
                self.data = {}

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        return self.data.get(stream_arn, {}).get(shard_id)

    def set(self, stream_arn: str, shard_id: str, sequence: str) -> None:
        self.data.setdefault(stream_arn, {})[shard_id] = sequence
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps(self.data))
            partial.replace(self.path)


class StreamPoller:
    """Feeds one table's stream to ``handler`` as Lambda's DynamoDB event source would."""

    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        table: str,
        handler: Handler,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.dynamodb = dynamodb
        self.streams = streams
        self.table = table
        self.handler = handler
        self.checkpoint = checkpoint or Checkpoint(None)
        self.iterators: dict[str, str | None] = {}
        self.closed: set[str] = set()
        self.attempts: dict[str, int] = {}

    def stream_arn(self) -> str | None:
        arn: str | None = self.dynamodb.describe_table(TableName=self.table)["Table"].get(
            "LatestStreamArn"
        )
        return arn

    def poll_once(self) -> int:
        """Read every shard once; hand each page of records to the handler. Records handled."""
        arn = self.stream_arn()
        if arn is None:
            return 0
        handled = 0
        for shard_id in self._shards(arn):
            handled += self._poll_shard(arn, shard_id)
        return handled

    def drain(self, max_polls: int = 50) -> int:
        """Poll until a poll finds nothing new (tests: everything written so far is handled)."""
        total = 0
        for _ in range(max_polls):
            handled = self.poll_once()
            total += handled
            if handled == 0:
                return total
        return total

    def _shards(self, arn: str) -> list[str]:
        shards: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            params: dict[str, Any] = {"StreamArn": arn}
            if start:
                params["ExclusiveStartShardId"] = start
            description = self.streams.describe_stream(**params)["StreamDescription"]
            shards += description.get("Shards", [])
            start = description.get("LastEvaluatedShardId")
            if not start:
                break
        # Parents before children: sequence numbers grow across a shard's lineage.
        shards.sort(key=lambda shard: int(shard["SequenceNumberRange"]["StartingSequenceNumber"]))
        return [shard["ShardId"] for shard in shards if shard["ShardId"] not in self.closed]

    def _iterator(self, arn: str, shard_id: str) -> str | None:
        if shard_id in self.iterators:
            return self.iterators[shard_id]
        after = self.checkpoint.get(arn, shard_id)
        params: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id}
        if after:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            params["ShardIteratorType"] = "TRIM_HORIZON"
        iterator: str | None = self.streams.get_shard_iterator(**params)["ShardIterator"]
        return iterator

    def _poll_shard(self, arn: str, shard_id: str) -> int:
        iterator = self._iterator(arn, shard_id)
        if iterator is None:
            self.closed.add(shard_id)
            return 0
        page = self.streams.get_records(ShardIterator=iterator, Limit=BATCH_SIZE)
        records = page.get("Records", [])
        self.iterators[shard_id] = page.get("NextShardIterator")
        if not records:
            if self.iterators[shard_id] is None:
                self.closed.add(shard_id)
            return 0
        event = {"Records": [lambda_record(record, arn) for record in records]}
        answer = self.handler(event, lambda_context("notify_changes")) or {}
        failures = [f["itemIdentifier"] for f in answer.get("batchItemFailures", [])]
        sequences = [record["dynamodb"]["SequenceNumber"] for record in records]
        if failures:
            first_failed = min(failures, key=int)
            done = [s for s in sequences if int(s) < int(first_failed)]
            self.attempts[first_failed] = self.attempts.get(first_failed, 0) + 1
            if self.attempts[first_failed] >= MAX_ATTEMPTS:
                print(
                    f"stream poller: gave up on record {first_failed} after"
                    f" {MAX_ATTEMPTS} attempts (in AWS it goes to the on-failure queue)",
                    file=sys.stderr,
                    flush=True,
                )
                done.append(first_failed)
            # Read again from the failed record on the next poll, as Lambda retries it.
            self.iterators.pop(shard_id)
            if done and done[-1] == first_failed:
                del self.attempts[first_failed]
                self.checkpoint.set(arn, shard_id, first_failed)
            elif done:
                self.checkpoint.set(arn, shard_id, done[-1])
            elif self.checkpoint.get(arn, shard_id) is None:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=arn,
                    ShardId=shard_id,
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=first_failed,
                )["ShardIterator"]
            return len(done)
        self.checkpoint.set(arn, shard_id, sequences[-1])
        return len(records)


def run(step: Callable[[], int], stop: threading.Event, name: str) -> None:
    """Call ``step`` until ``stop`` is set, pausing while it finds nothing to do; a failing
    step is reported and tried again (DynamoDB Local restarting, say), never fatal."""
    while not stop.is_set():
        try:
            handled = step()
        except Exception as error:  # keep polling: this is a development stand-in
            # The type only: a message may quote an address, and no log line holds one.
            print(f"{name}: {type(error).__name__}; trying again", file=sys.stderr, flush=True)
            handled = 0
        if handled == 0:
            stop.wait(IDLE_INTERVAL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="DynamoDB Local's URL")
    parser.add_argument("--table", required=True)
    parser.add_argument("--checkpoint", type=Path, help="file that keeps the position")
    args = parser.parse_args(argv)
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    import boto3

    import app
    from devtools.local_deliveries import deliver_due

    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    dynamodb = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name=region)
    streams = boto3.client("dynamodbstreams", endpoint_url=args.endpoint, region_name=region)
    poller = StreamPoller(
        dynamodb, streams, args.table, app.notify_changes, Checkpoint(args.checkpoint)
    )
    stop = threading.Event()
    # Webhook deliveries on a thread of their own, as they are their own function in AWS:
    # a slow endpoint (up to its 10 s deadline) never holds up the stream, nor the emails.
    deliveries = threading.Thread(
        target=run,
        args=(lambda: deliver_due(app.deliver_webhooks), stop, "webhook deliveries"),
        daemon=True,
    )
    deliveries.start()
    with contextlib.suppress(KeyboardInterrupt):
        run(poller.poll_once, stop, "stream poller")
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Audit a table: ``make audit`` (the dev table) or against AWS.

    python -m devtools.audit                                  # make dev's table
    python -m devtools.audit --event 3                        # one event
    python -m devtools.audit --endpoint http://127.0.0.1:18001   # make dev DB_PORT=18001
    python -m devtools.audit --table <name> --region eu-west-1 --aws

Runs the same per-event steps as the queue worker in AWS, in a loop, with a
small budget (``--page-size`` items a page, ``--pages-per-step`` pages a step),
so every event bigger than one step is stopped and resumed from its cursor.
Prints a JSON report; exit status 0 only when no invariant is violated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from chalicelib.audit import LOCAL_BUDGET, Budget, audit_events
from chalicelib.storage import TicketStore, make_client
from devtools.dev_server import DEFAULT_DB_PORT, DEFAULT_TABLE
from devtools.dynamodb_local import local_client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--event", type=int, action="append", help="event id (repeatable)")
    parser.add_argument(
        "--endpoint", default=f"http://127.0.0.1:{DEFAULT_DB_PORT}", help="DynamoDB Local URL"
    )
    parser.add_argument("--aws", action="store_true", help="use real DynamoDB, not --endpoint")
    parser.add_argument("--region", help="AWS region (with --aws)")
    parser.add_argument("--page-size", type=int, default=LOCAL_BUDGET.page_size)
    parser.add_argument("--pages-per-step", type=int, default=LOCAL_BUDGET.max_pages)
    args = parser.parse_args(argv)
    if args.aws:
        if args.region:
            os.environ["AWS_DEFAULT_REGION"] = args.region
        client = make_client()
    else:
        client = local_client(args.endpoint)
    budget = Budget(page_size=args.page_size, max_pages=args.pages_per_step)
    report = audit_events(TicketStore(client, args.table), args.event, budget)
    print(json.dumps(report.to_json(), indent=2))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: a flash sale on DynamoDB Local, measured against the database's own limit.

    make bench [BENCH_ARGS="..."]        # python -m devtools.bench --help for the options

Each phase is started by all worker processes at once (a barrier), each worker
being one "Lambda instance" that invokes the real Chalice app with API
Gateway-shaped events (no HTTP server in the measured path).

The package is split by job: ``plan`` (the events and phases), ``scenario``
(the worker processes that run them), ``report`` (figures, correctness from the
audit, table and plot) and ``cli`` (arguments, the run, the files). Phases, in order:

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

from devtools.bench.cli import main, parse_args, run

__all__ = ["main", "parse_args", "run"]

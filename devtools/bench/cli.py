"""``make bench`` from the command line: run the flash sale, then print and save the report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from chalicelib.storage import TicketStore
from devtools.bench import report as reports
from devtools.bench.plan import plan_flash_sale
from devtools.bench.scenario import Sample, run_phases
from devtools.dynamodb_local import ROOT, DynamoDBLocal, local_client
from devtools.issuer import LocalIssuer
from devtools.tables import create_table_if_missing

TABLE = "bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.bench",
        description="A flash sale on DynamoDB Local, measured against the database's own"
        " limit (make bench BENCH_ARGS='...').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--processes", type=int, default=8, help="worker processes")
    parser.add_argument("--tickets", type=int, default=1000, help="tickets of the sale")
    parser.add_argument("--users", type=int, default=1600, help="distinct people booking")
    parser.add_argument("--cancels", type=int, default=200, help="ticket holders who cancel")
    parser.add_argument("--large-event", type=int, default=10000, help="0 to skip")
    parser.add_argument("--warmup", type=int, default=1500, help="unmeasured calls first")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark; write ``flash-sale.json`` and ``latency.png``; return the report."""
    if args.users < args.tickets + args.cancels:
        raise SystemExit("--users must be at least --tickets + --cancels (so cancels promote)")
    with DynamoDBLocal() as database, tempfile.TemporaryDirectory() as issuer_directory:
        LocalIssuer(Path(issuer_directory))  # the workers sign people in with its key
        client = local_client(database.endpoint_url)
        create_table_if_missing(client, TABLE)
        sale = plan_flash_sale(TicketStore(client, TABLE), args)
        samples, durations = run_phases(
            database.endpoint_url, TABLE, args.processes, sale.phases, issuer_directory, sale.before
        )
        correctness = reports.correctness(
            database.endpoint_url, TABLE, sale.sale_event_id, args.tickets
        )
    report = build_report(args, samples, durations, correctness, sale.large_window)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flash-sale.json").write_text(json.dumps(report, indent=2) + "\n")
    reports.plot(samples, args.out / "latency.png")
    return report


def build_report(
    args: argparse.Namespace,
    samples: list[Sample],
    durations: dict[str, float],
    correctness: dict[str, Any],
    window: int,
) -> dict[str, Any]:
    phase_seconds = {phase: round(seconds, 3) for phase, seconds in durations.items()}
    for kind in ("baseline", "book"):  # the ABBA blocks count as one phase each
        blocks = [phase for phase in list(durations) if phase.startswith(f"{kind}_")]
        durations[kind] = sum(durations.pop(phase) for phase in blocks)
        for sample in samples:
            if sample.phase in blocks:
                sample.phase = kind
    operations = {
        phase: reports.summarise(phase, samples, durations[phase])
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
                reports.slice_costs(samples, "large_first", 1),
                reports.slice_costs(samples, "large_last", args.large_event - window + 1),
            ],
        }
    if not args.skip_cold_start:
        report["cold_start"] = reports.cold_start()
        report["package"] = reports.package_size()
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    reports.print_table(report)
    print(
        f"\nresults: {args.out / 'flash-sale.json'}, {args.out / 'latency.png'}"
        f" ({time.perf_counter() - started:.0f} s)"
    )
    return 0 if report["correctness"]["ok"] else 1

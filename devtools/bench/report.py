"""What a benchmark run measured: per-operation figures, correctness, cold start, table, plot."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from chalicelib import booking
from chalicelib.audit import audit_event
from chalicelib.models import Status
from chalicelib.storage import TicketStore
from devtools.bench.scenario import PHASES, Sample
from devtools.dynamodb_local import ROOT, local_client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


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
        "requests_per_call": _mean([s.requests for s in good]),
        "requests_min_max": [min(s.requests for s in good), max(s.requests for s in good)]
        if good
        else None,
        "wcu_per_call": _mean([s.write_units for s in good]),
        "rcu_per_call": _mean([s.read_units for s in good]),
    }


def slice_costs(samples: list[Sample], phase: str, first: int) -> dict[str, Any]:
    """The successful bookings of ``phase``, numbered from ``first`` in the event."""
    chosen = [s for s in samples if s.phase == phase and s.outcome == "BOOKED"]
    return {
        "bookings": f"{first}-{first + len(chosen) - 1}",
        "outcomes": dict(Counter(s.outcome for s in samples if s.phase == phase)),
        "p50_ms": round(percentile([s.seconds * 1000 for s in chosen], 50), 2),
        "p95_ms": round(percentile([s.seconds * 1000 for s in chosen], 95), 2),
        "requests_per_booking": _mean([s.requests for s in chosen]),
        "wcu_per_booking": _mean([s.write_units for s in chosen]),
    }


def correctness(endpoint: str, table: str, event_id: int, tickets: int) -> dict[str, Any]:
    """The sale as the invariant audit sees it (the audit owns every rule, FIFO included):
    as the cancellations left it, with promotions made by count still pending, and
    again once they are settled (as the stream handler would)."""
    store = TicketStore(local_client(endpoint), table)
    violations = audit_event(store, event_id)
    pending = store.get_event(event_id).pending_promotions  # type: ignore[union-attr]
    settled = booking.settle_promotions(store, event_id)
    violations += audit_event(store, event_id)
    partition = store.event_partition(event_id)
    assert partition.event is not None
    booked = [p for p in partition.places if p.status == Status.BOOKED]
    event = partition.event
    return {
        "tickets": tickets,
        "tickets_sold": len(booked),
        "oversold": max(0, len(booked) - tickets),
        "counters": {
            "available": event.available_tickets,
            "booked": event.booked_tickets,
            "waiting": event.waiting_list_count,
        },
        "promotions_pending_before_settling": pending,
        "settled": settled,
        "promoted": sum(1 for p in booked if p.promoted_from_wait_key is not None),
        "waiting_list_served_in_order": not any(v.rule == "fifo-promotion" for v in violations),
        "audit_violations": [v.to_json() for v in violations],
        "ok": len(booked) == tickets and not violations,
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
    header = (
        f"{'operation':<16}{'calls':>7}{'ok/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'req/op':>8}{'WCU/op':>8}{'RCU/op':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, row in report["operations"].items():
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
    result = report["correctness"]
    print(
        f"correctness: sold {result['tickets_sold']}/{result['tickets']},"
        f" oversold {result['oversold']}, promoted {result['promoted']}"
        f" ({result['promotions_pending_before_settling']} by count, settled after),"
        f" waiting list in order: {result['waiting_list_served_in_order']},"
        f" audit violations: {len(result['audit_violations'])}"
    )
    if "cold_start" in report:
        cold = report["cold_start"]
        print(
            f"cold start: import app {cold['import_app_ms']} ms vs chalice+boto3"
            f" {cold['import_chalice_boto3_ms']} ms (app's own: {cold['app_overhead_ms']} ms);"
            f" deployment zip {report['package']['deployment_zip_kib']} KiB"
        )

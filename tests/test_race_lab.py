"""``python -m devtools.race_lab`` runs as documented (a tiny race; not a timing)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools.dynamodb_local import ROOT

TINY = ["--processes", "2", "--per-process", "3"]


def race(operation: str) -> dict[str, str]:
    """The figures a tiny ``python -m devtools.race_lab --operation <operation>`` prints."""
    run = subprocess.run(
        [sys.executable, "-m", "devtools.race_lab", "--operation", operation, *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return dict(line.split(maxsplit=1) for line in run.stdout.splitlines() if line.strip())


@pytest.mark.parametrize("operation", ["book", "cancel", "join"])
def test_the_race_lab_runs_and_reads_the_table_back(operation: str) -> None:
    figures = race(operation)
    assert figures["operation"] == operation
    assert figures["operations"] == "6" and figures["service_busy"] == "0"
    assert float(figures["requests_per_op"]) >= 1
    assert figures["audit_clean"] == figures["audit_clean_after_settling"] == "True"


def test_the_ordered_write_yardstick_counts_its_refusals() -> None:
    figures = race("ordered")
    assert figures["operations"] == "6" and figures["service_busy"] == "0"
    requests = float(figures["requests_per_op"])
    # Every refusal is one more request: the share printed is the share of the requests.
    assert requests >= 1
    assert abs(float(figures["refused_share"]) - (requests - 1) / requests) < 0.01

"""``python -m devtools.race_lab`` runs as documented (a tiny race; not a timing)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools.dynamodb_local import ROOT

TINY = ["--processes", "2", "--per-process", "3"]


@pytest.mark.parametrize("operation", ["book", "cancel", "join", "pass-by-count"])
def test_the_race_lab_runs_and_reads_the_table_back(operation: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "devtools.race_lab", "--operation", operation, *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    figures = dict(line.split(maxsplit=1) for line in run.stdout.splitlines() if line.strip())
    assert figures["operation"] == operation
    assert figures["operations"] == "6" and figures["service_busy"] == "0"
    floor = 1 if operation in ("book", "pass-by-count") else 2
    assert float(figures["requests_per_op"]) >= floor
    # The service's own operations leave a table its audit accepts; the prototype
    # write of a design not built does not, and says so by leaving the audit out.
    assert figures.get("audit_clean") == ("True" if operation != "pass-by-count" else None)

"""One tiny run of ``make bench-waitlist``: the code keeps working, and no operation's
DynamoDB cost grows with the list (request and capacity counts are exact, unlike
timings, so they can be asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.bench import waitlist

pytestmark = pytest.mark.dynamodb_local

#: A key's path may have a zero digit at one more or one fewer level than another
#: key's (1 in 128 per level), which changes a snapshot read by one node: 2 RCU
#: in 14. A cost that follows the list (a COUNT of the entries ahead) would
#: triple between these sizes.
TOLERANCE = 1.2


def test_a_tiny_run_costs_the_same_at_both_list_sizes(tmp_path: Path) -> None:
    assert (
        waitlist.main(["--checkpoints=20,400", "--ops=4", "--warmup=0", f"--out={tmp_path}"]) == 0
    )

    report = json.loads((tmp_path / "waitlist-scale.json").read_text())
    assert report["final_audit_clean"]
    assert set(report["checkpoints"]) == {"20", "400"}
    for operation, figures in report["ratios"].items():
        for figure in ("requests", "rcu", "wcu"):
            assert figures[figure] <= TOLERANCE, (operation, figure, report["checkpoints"])
    assert (tmp_path / "waitlist-scale.png").stat().st_size > 10_000

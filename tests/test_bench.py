"""One quick run of ``make bench``'s code, tiny, to keep it working (not a timed test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools import bench

pytestmark = pytest.mark.dynamodb_local


def test_a_tiny_flash_sale_runs_and_reports_a_correct_sale(tmp_path: Path) -> None:
    args = bench.parse_args(
        [
            "--processes=2",
            "--tickets=24",
            "--users=40",
            "--cancels=6",
            "--large-event=40",
            "--warmup=10",
            "--skip-cold-start",
            f"--out={tmp_path}",
        ]
    )
    report = bench.run(args)

    assert report["correctness"]["ok"], report["correctness"]
    assert report["correctness"]["tickets_sold"] == 24
    assert report["correctness"]["oversold"] == 0
    assert report["correctness"]["promoted"] == 6
    operations = report["operations"]
    assert operations["book"]["outcomes"] == {"BOOKED": 24}
    assert operations["baseline"]["outcomes"] == {"BOOKED": 24}
    assert operations["waitlist"]["outcomes"] == {"WAITLISTED": 16}
    assert operations["cancel_promote"]["outcomes"] == {"PROMOTED": 6}
    assert operations["book"]["requests_per_call"] == 1.0
    assert [row["bookings"] for row in report["large_event"]["slices"]] == ["1-20", "21-40"]
    assert json.loads((tmp_path / "flash-sale.json").read_text()) == report
    assert (tmp_path / "latency.png").stat().st_size > 10_000

"""``make dev`` end to end: chalice local over DynamoDB Local with data on disk.

Runs the same ``devtools.dev_server`` that ``make dev`` runs, on spare ports and
a temporary data folder, as a real HTTP server. The smoke-test script (the one a
user runs against a deployed stack) must pass against it, and after a stop and
a restart the events and bookings must still be there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devtools.dynamodb_local import free_port, port_in_use
from tests.conftest import ROOT

pytestmark = pytest.mark.dynamodb_local


@contextmanager
def dev_server(data_dir: Path, api_port: int, db_port: int) -> Iterator[str]:
    command = [
        sys.executable,
        "-m",
        "devtools.dev_server",
        "--stage",
        "test",
        "--api-port",
        str(api_port),
        "--db-port",
        str(db_port),
        "--data-dir",
        str(data_dir),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base_url = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 90
        while not _answers(base_url + "/events"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dev server did not start:\n{process.stdout.read()}")  # type: ignore[union-attr]
            time.sleep(0.3)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "stopped the API and DynamoDB Local" in output


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_smoke_script_passes_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    api_port, db_port = free_port(), free_port()
    with dev_server(tmp_path, api_port, db_port) as base_url:
        smoke = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "smoke_test.py")],
            env={**os.environ, "BASE_URL": base_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "smoke test passed" in smoke.stdout
        before = _get(base_url + "/events")["events"]
        assert len(before) == 1

    # Both processes are gone: nothing listens on either port any more.
    assert not port_in_use(api_port)
    assert not port_in_use(db_port)

    with dev_server(tmp_path, api_port, db_port) as base_url:
        after = _get(base_url + "/events")["events"]
        assert after == before
        standing = _get(
            f"{base_url}/events/{before[0]['eventId']}/standing?userEmail=cat%40example.com"
        )
        assert standing["status"] == "BOOKED"

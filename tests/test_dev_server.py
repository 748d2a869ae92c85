"""``make dev`` end to end, run exactly as a new user runs it.

The test copies the project (what git tracks plus untracked files that are not
ignored) into a temporary folder and runs ``make dev`` there: the same Makefile
target, the same ``local`` stage, the same data folder inside the clone
(``.dynamodb/``) and the same reload behaviour. Only the ports differ
(``API_PORT``/``DB_PORT``), so it can run next to a developer's own ``make dev``.
``.venv`` and ``node_modules`` are symlinked to this checkout's, so nothing is
reinstalled.

Against that server it checks what a real client meets: steady writes do not
restart the API, a rush of simultaneous connections gets an HTTP answer for
every request (and leaves the table consistent), an edit of the source reloads
it, and a stop and start keep the data. An earlier version of this test ran the
server with a data folder outside the project and missed that every database
write restarted ``chalice local``.
"""

from __future__ import annotations

import email
import email.policy
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chalicelib.audit import audit_events
from chalicelib.storage import TicketStore
from devtools.dynamodb_local import free_port, local_client, port_in_use
from devtools.issuer import LocalIssuer
from tests.conftest import ROOT

pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]

#: What a restart of the API looks like in ``make dev``'s output: chalice's own
#: reloader, and ``devtools.dev_server``'s.
RESTART_MARKERS = ("Restarting local dev server.", "reloading the API")
LOCAL_TABLE = "ticket-booking-local"
WRITES = 200
WRITES_SECONDS = 20.0
RUSH_CLIENTS = 100
RUSH_TICKETS = 60


def copy_project(destination: Path) -> Path:
    """A throwaway clone of the working tree: tracked plus untracked, not ignored.

    ``copy2`` keeps the mtimes, so make's install stamps stay newer than the
    requirements; ``.venv`` and ``node_modules`` are links to the real ones.
    """
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree but still tracked
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for name in (".venv", "node_modules"):
        (destination / name).symlink_to(ROOT / name, target_is_directory=True)
    return destination


class DevRun:
    """One ``make dev`` process group, its output collected line by line."""

    def __init__(self, project: Path, api_port: int, db_port: int) -> None:
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.db_endpoint = f"http://127.0.0.1:{db_port}"
        # A make inside ``make test`` must not inherit the outer make's flags.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        self.process = subprocess.Popen(
            ["make", "dev", f"API_PORT={api_port}", f"DB_PORT={db_port}"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def restarts(self) -> int:
        return sum(any(m in line for m in RESTART_MARKERS) for line in list(self.lines))

    def wait_for_line(self, text: str, start: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines[start:]):
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"no {text!r} in make dev's output:\n{self.output}")
            time.sleep(0.1)

    def wait_until_answering(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not _answers(self.base_url + "/events"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make dev did not start:\n{self.output}")
            time.sleep(0.3)

    def interrupt(self, how: signal.Signals = signal.SIGINT) -> None:
        """Ctrl-C in the terminal (SIGINT), or a process manager (SIGTERM), to the whole
        process group: make and dev_server both get it, and make forwards it again."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, how)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(timeout=10)


@contextmanager
def make_dev(
    project: Path, api_port: int, db_port: int, stop: signal.Signals = signal.SIGINT
) -> Iterator[DevRun]:
    run = DevRun(project, api_port, db_port)
    try:
        run.wait_until_answering()
        yield run
    finally:
        run.interrupt(stop)
    assert "stopped the API and DynamoDB Local" in run.output, run.output
    # make found everything installed: the copy shares the checkout's .venv and node_modules.
    assert "pip install" not in run.output and "npm ci" not in run.output, run.output


Mail = tuple[str, str]


def read_emails(outbox: Path) -> list[Mail]:
    """(To, Subject) of every email in ``outbox``."""
    found: list[Mail] = []
    for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((str(parsed["To"]), str(parsed["Subject"])))
    return found


def _to(mails: list[Mail], people: set[str]) -> list[Mail]:
    return [mail for mail in mails if mail[0] in people]


def wait_for_emails(
    outbox: Path, enough: Callable[[list[Mail]], bool], timeout: float = 60
) -> list[Mail]:
    deadline = time.monotonic() + timeout
    while True:
        mails = read_emails(outbox)
        if enough(mails):
            return mails
        if time.monotonic() > deadline:
            pytest.fail(f"outbox/ never had the emails expected: {Counter(mails)}")
        time.sleep(0.25)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def make_token(project: Path, email: str, role: str = "attendee") -> str:
    """``make -s token`` in the clone, as the README tells a user to."""
    outer_make = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    made = subprocess.run(
        ["make", "-s", "token", f"EMAIL={email}", f"ROLE={role}"],
        cwd=project,
        env={k: v for k, v in os.environ.items() if k not in outer_make},
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def _get(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def steady_writes(base_url: str, event_id: int, issuer: LocalIssuer) -> Counter[str]:
    """``WRITES`` bookings, each by its own signed-in person, at an even pace."""
    tokens = [issuer.token(f"w{i}@example.com") for i in range(WRITES)]
    outcomes: Counter[str] = Counter()
    start = time.monotonic()
    for i in range(WRITES):
        time.sleep(max(0.0, start + i * WRITES_SECONDS / WRITES - time.monotonic()))
        try:
            status, _ = _post(base_url + "/book", {"eventId": event_id}, tokens[i])
            outcomes[str(status)] += 1
        except (OSError, http.client.HTTPException) as error:
            outcomes[type(error).__name__] += 1
    return outcomes


def rush(api_port: int, event_id: int, issuer: LocalIssuer) -> Counter[str]:
    """``RUSH_CLIENTS`` threads, released together, each on its own connection."""
    barrier = threading.Barrier(RUSH_CLIENTS)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    tokens = [issuer.token(f"rush{n}@example.com") for n in range(RUSH_CLIENTS)]

    def client(n: int) -> None:
        body = json.dumps({"eventId": event_id})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[n]}"}
        connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=120)
        try:
            barrier.wait()
            connection.request("POST", "/book", body, headers)
            response = connection.getresponse()
            response.read()
            outcome = str(response.status)
        except (OSError, http.client.HTTPException) as error:
            outcome = type(error).__name__
        finally:
            connection.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(RUSH_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return outcomes


def _errors(outcomes: Counter[str]) -> int:
    return sum(count for outcome, count in outcomes.items() if outcome not in ("201", "202"))


def test_make_dev_holds_up_under_a_real_client(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "clone")
    api_port, db_port = free_port(), free_port()
    figures: dict[str, Any] = {}

    with make_dev(project, api_port, db_port) as run:
        base_url = run.base_url
        assert (project / ".dynamodb" / "data").is_dir(), "data is not kept inside the clone"
        # People sign in with make dev's issuer: the organiser through make token,
        # the crowd with the same key (.local/ in the clone), minted in-process.
        organiser = make_token(project, "org@example.com", "organiser")
        issuer = LocalIssuer(project / ".local")
        # 1. Steady writes: each one changes DynamoDB Local's file inside the clone.
        steady = {"name": "steady", "totalTickets": 150}
        status, event = _post(base_url + "/initialize", steady, organiser)
        assert status == 201, event
        restarts_before = run.restarts()
        writes = steady_writes(base_url, event["eventId"], issuer)
        time.sleep(2)  # a poller that reacts to the last writes would do so by now
        figures["writes"] = {
            "outcomes": dict(writes),
            "errors": _errors(writes),
            "restarts": run.restarts() - restarts_before,
        }

        # 2. A rush on one event: every connection must get an HTTP answer.
        run.wait_until_answering()
        rush_body = {"name": "rush", "totalTickets": RUSH_TICKETS}
        status, event = _post(base_url + "/initialize", rush_body, organiser)
        assert status == 201, event
        rush_event = event["eventId"]
        restarts_before = run.restarts()
        outcomes = rush(api_port, rush_event, issuer)
        time.sleep(2)
        figures["rush"] = {
            "outcomes": dict(outcomes),
            "errors": _errors(outcomes),
            "restarts": run.restarts() - restarts_before,
        }
        print(f"\nmake dev under load: {json.dumps(figures)}")
        run.wait_until_answering()
        smoke = subprocess.run(
            [sys.executable, str(project / "scripts" / "smoke_test.py")],
            env={**os.environ, "BASE_URL": base_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr + run.output
        report = audit_events(TicketStore(local_client(run.db_endpoint), LOCAL_TABLE), [rush_event])
        status_after = _get(f"{base_url}/status/{rush_event}")

        assert figures["writes"]["errors"] == 0 and figures["writes"]["restarts"] == 0, figures
        assert figures["rush"]["errors"] == 0 and figures["rush"]["restarts"] == 0, figures
        assert outcomes == {"201": RUSH_TICKETS, "202": RUSH_CLIENTS - RUSH_TICKETS}, figures
        assert report.clean, report.to_json()
        assert status_after["bookedTickets"] == RUSH_TICKETS
        assert status_after["waitingListCount"] == RUSH_CLIENTS - RUSH_TICKETS

        # Notifications: the notifier reads DynamoDB Local's stream and writes each email
        # to outbox/ in the clone; writing there restarts nothing. The organiser cancels
        # one ticket at the box office, and the head of the list is told, once.
        outbox = project / "outbox"
        rush_people = {f"rush{n}@example.com" for n in range(RUSH_CLIENTS)}
        first = wait_for_emails(outbox, lambda mails: len(_to(mails, rush_people)) >= RUSH_CLIENTS)
        subjects = Counter(subject for to, subject in _to(first, rush_people))
        assert subjects == {
            "Your ticket for rush": RUSH_TICKETS,
            "You are on the waiting list for rush": RUSH_CLIENTS - RUSH_TICKETS,
        }, subjects
        lists = f"{base_url}/events/{rush_event}"
        head = _get(f"{lists}/waiting-list?limit=1", organiser)["waitingList"][0]["userEmail"]
        holder = _get(f"{lists}/attendees?limit=1", organiser)["attendees"][0]["userEmail"]
        status, cancelled = _post(
            base_url + "/cancel", {"eventId": rush_event, "userEmail": holder}, organiser
        )
        assert status == 200 and cancelled["ticketPassedToWaitingList"], cancelled
        promoted = (head, "You have a ticket for rush")
        wait_for_emails(outbox, lambda mails: promoted in mails)
        time.sleep(2)  # a second copy, if any, would be written by now
        final = read_emails(outbox)
        assert final.count(promoted) == 1
        assert final.count((holder, "Your booking for rush is cancelled")) == 1
        assert run.restarts() == 0, run.output

        # 3. Editing the source reloads the API, and the next request sees the edit.
        restarts_before, seen = run.restarts(), len(run.lines)
        token = f"probe-{time.monotonic_ns()}"
        with (project / "app.py").open("a") as app_source:
            app_source.write(
                f'\n\n@app.route("/reload-probe")\ndef reload_probe() -> dict:\n'
                f'    return {{"probe": "{token}"}}\n'
            )
        run.wait_for_line("API reloaded", seen, timeout=60)
        assert _get(base_url + "/reload-probe") == {"probe": token}
        assert run.restarts() - restarts_before == 1, run.output[-3000:]

        events_before = _get(base_url + "/events?limit=100")["events"]

    # Ctrl-C stopped both processes: nothing listens on either port any more.
    assert not port_in_use(api_port)
    assert not port_in_use(db_port)

    # 4. Stop and start again: the same events and places, from .dynamodb/ in the clone.
    #    This time stopped with SIGTERM to the group, which arrives twice (make
    #    forwards it): the cleanup must still stop DynamoDB Local.
    with make_dev(project, api_port, db_port, stop=signal.SIGTERM) as run:
        assert _get(run.base_url + "/events?limit=100")["events"] == events_before
        # The box-office cancellation and its promotion survived the restart.
        standings = {
            person: _get(
                f"{run.base_url}/events/{rush_event}/standing", make_token(project, person)
            )["status"]
            for person in (head, holder)
        }
        assert standings == {head: "BOOKED", holder: "NONE"}, standings
        assert run.restarts() == 0, run.output
    assert not port_in_use(api_port), "SIGTERM left the API running"
    assert not port_in_use(db_port), "SIGTERM left DynamoDB Local running"

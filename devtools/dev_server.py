"""``make dev``: DynamoDB Local with data on disk, the table, and ``chalice local``.

Stopping it (Ctrl-C) stops the API first, then DynamoDB Local; the data stays
under ``.dynamodb/`` (git-ignored), so the next ``make dev`` finds it again.

This module is also the API's reloader. ``chalice local``'s own reloader polls
the whole project tree (``.venv`` and ``node_modules`` included) and restarts
on any change there; DynamoDB Local's file lives in that tree, so every
booking restarted the API and the requests in flight or arriving during the
restart failed. Keeping the data outside the clone would break "the data is
in ``.dynamodb/``", and chalice's watchdog-based watcher watches the same tree.
So chalice runs with ``--no-autoreload`` and this process restarts it only when
what chalice actually loads changes: ``app.py``, ``chalicelib/**/*.py`` and
``.chalice/config.json`` (``SOURCE_PATTERNS``). Nothing else is looked at.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from chalicelib.notifications.settings import MAIL_OUTBOX_ENV
from chalicelib.observability import KEY_ENV
from chalicelib.storage.schema import ENDPOINT_URL_ENV, TABLE_NAME_ENV
from devtools.dynamodb_local import (
    LOCAL_CREDENTIALS,
    ROOT,
    DynamoDBLocal,
    DynamoDBLocalError,
    local_client,
    port_in_use,
)
from devtools.issuer import LocalIssuer
from devtools.tables import create_table_if_missing

API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
DEFAULT_DB_PORT = 8001
DEFAULT_TABLE = "ticket-booking-local"
#: The files whose change reloads the API (globs relative to the project root).
SOURCE_PATTERNS = ("app.py", "chalicelib/**/*.py", ".chalice/config.json")
#: Seconds between two looks at the source files' mtimes.
POLL_INTERVAL = 0.5
#: Seconds a (re)started API has to accept connections.
START_TIMEOUT = 60.0

#: make dev's own secrets (git-ignored): made once, kept across runs.
LOCAL_SECRETS = ROOT / ".local"
#: Where make dev's emails land, one ``.eml`` file each (git-ignored; not watched).
OUTBOX = ROOT / "outbox"
#: How far the notifier has read the table's stream: a file next to the data (not watched).
STREAM_CHECKPOINT = "stream-checkpoint.json"

Snapshot = dict[str, tuple[int, int]]


def local_secret(path: Path) -> str:
    """A random secret kept in ``path`` (created on first use, readable by its owner only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def stage_environment(stage: str) -> dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"][stage].get("environment_variables", {})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Defaults are ``make dev``'s; ``make dev API_PORT=... DB_PORT=...`` moves it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="local", help="Chalice stage (default: local)")
    parser.add_argument("--api-port", type=int, default=DEFAULT_API_PORT)
    parser.add_argument(
        "--db-port", type=int, help=f"DynamoDB Local port (default: {DEFAULT_DB_PORT})"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".dynamodb")
    return parser.parse_args(argv)


def source_snapshot(root: Path) -> Snapshot:
    """(mtime, size) of every source file chalice loads, keyed by relative path.

    A file that appears or disappears changes the keys, so it counts as a change.
    """
    snapshot: Snapshot = {}
    for pattern in SOURCE_PATTERNS:
        for path in root.glob(pattern):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between glob and stat
                continue
            snapshot[path.relative_to(root).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return snapshot


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """The files added, removed or modified between two snapshots, sorted."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


class Child:
    """A child process in its own session, stopped with everything it started."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        """Start it; True once it is ready (``ready``), False if it exited first."""
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            # Own session: a Ctrl-C in the terminal reaches only dev_server,
            # which stops the API before the database behind it; stopping the
            # group also reaches anything the app itself started.
            start_new_session=True,
            env=self.env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(0.1)
        return False

    def ready(self) -> bool:
        return True

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class LocalApi(Child):
    """``chalice local`` (through ``devtools.local_api``)."""

    def __init__(self, stage: str, port: int, env: dict[str, str]) -> None:
        self.port = port
        command = [
            sys.executable,
            "-m",
            "devtools.local_api",
            "local",
            "--stage",
            stage,
            "--host",
            API_HOST,
            "--port",
            str(port),
            "--no-autoreload",
        ]
        super().__init__(command, env)

    def ready(self) -> bool:
        return port_in_use(self.port)


class Notifier(Child):
    """``devtools.stream_poller``: the table's stream fed to ``app.notify_changes``, and due
    webhook deliveries to ``app.deliver_webhooks``; emails land in ``outbox/``.

    Its environment is the stage's, as chalice local gives the API (the stage's
    variables override the shell's).
    """

    def __init__(
        self, stage: str, endpoint: str, table: str, data_dir: Path, env: dict[str, str]
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "devtools.stream_poller",
            "--endpoint",
            endpoint,
            "--table",
            table,
            "--checkpoint",
            str(data_dir / STREAM_CHECKPOINT),
        ]
        super().__init__(command, {**env, **stage_environment(stage), MAIL_OUTBOX_ENV: str(OUTBOX)})


class Services:
    """What a source change restarts: the API and the notifier, together."""

    def __init__(self, api: LocalApi, notifier: Notifier) -> None:
        self.api = api
        self.notifier = notifier

    def start(self) -> bool:
        return self.notifier.start() and self.api.start()

    def stop(self) -> None:
        self.api.stop()
        self.notifier.stop()

    def exit_code(self) -> int | None:
        api = self.api.exit_code()
        return api if api is not None else self.notifier.exit_code()


def serve_and_reload(api: Services, root: Path = ROOT) -> None:
    """Restart ``api`` whenever a source file changes, until interrupted.

    A crashed API (say, a syntax error in app.py) is reported once and started
    again on the next source change, the way chalice's reloader behaves.
    """
    sources = source_snapshot(root)
    reported_exit = False
    while True:
        time.sleep(POLL_INTERVAL)
        current = source_snapshot(root)
        changed = changed_files(sources, current)
        if not changed:
            code = api.exit_code()
            if code is not None and not reported_exit:
                print(f"the API exited ({code}); it restarts on the next source change", flush=True)
                reported_exit = True
            continue
        # Let a save that touches several files (git checkout, an IDE) finish.
        time.sleep(POLL_INTERVAL)
        sources = source_snapshot(root)
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        print(f"source changed ({changed[0]}{more}): reloading the API", flush=True)
        api.stop()
        reported_exit = False
        if api.start():
            print("API reloaded", flush=True)


class _Stopping:
    """Ctrl-C (SIGINT) or SIGTERM stops make dev once; any later one is ignored.

    A signal to the process group reaches make and this process, and make
    forwards it again: a second interrupt raised inside the cleanup would cut it
    short and leave DynamoDB Local listening on its port.
    """

    begun = False

    @classmethod
    def on_signal(cls, signum: int, frame: object) -> None:
        if not cls.begun:
            cls.begun = True
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stage_env = stage_environment(args.stage)
    # chalice local lets a stage's environment override the shell's, so the
    # ``local`` stage names only its table: the endpoint comes from here, with
    # the port ``make dev DB_PORT=...`` chose. A stage that pins one must agree.
    endpoint = stage_env.get(ENDPOINT_URL_ENV)
    if endpoint and args.db_port and not endpoint.endswith(f":{args.db_port}"):
        print(f"make dev: stage {args.stage} pins DynamoDB to {endpoint}", file=sys.stderr)
        return 2
    endpoint = endpoint or f"http://127.0.0.1:{args.db_port or DEFAULT_DB_PORT}"
    table = stage_env.get(TABLE_NAME_ENV, DEFAULT_TABLE)
    data_dir: Path = args.data_dir
    database = DynamoDBLocal(port=int(endpoint.rsplit(":", 1)[1]), db_path=data_dir / "data")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        database.start(log_path=data_dir / "dynamodb-local.log")
    except DynamoDBLocalError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _Stopping.on_signal)
    signal.signal(signal.SIGINT, _Stopping.on_signal)
    env = {
        **os.environ,
        **LOCAL_CREDENTIALS,
        ENDPOINT_URL_ENV: endpoint,
        TABLE_NAME_ENV: table,
        KEY_ENV: local_secret(LOCAL_SECRETS / "log-pseudonym.key"),
        # make dev plays the token issuer: make token signs with the same key.
        **LocalIssuer(LOCAL_SECRETS).environment,
    }
    api = Services(
        LocalApi(args.stage, args.api_port, env),
        Notifier(args.stage, endpoint, table, data_dir, env),
    )
    try:
        created = create_table_if_missing(local_client(endpoint), table)
        print(
            f"DynamoDB Local on {endpoint} (data in {data_dir / 'data'}); "
            f"table {table} {'created' if created else 'found'}",
            flush=True,
        )
        print(f"API on http://{API_HOST}:{args.api_port}  (Ctrl-C stops both)", flush=True)
        print(f"emails are written to {OUTBOX}/ (one .eml file each)", flush=True)
        if not api.start():
            return api.exit_code() or 1
        print("edits to app.py, chalicelib/ and .chalice/config.json reload the API", flush=True)
        serve_and_reload(api)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        _Stopping.begun = True  # from here on, signals no longer interrupt
        api.stop()
        database.stop()
        print("stopped the API and DynamoDB Local", flush=True)


if __name__ == "__main__":
    sys.exit(main())

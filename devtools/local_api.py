"""Chalice's own ``chalice local``, with a listen backlog that survives a rush.

    python -m devtools.local_api local --stage local --host 127.0.0.1 --port 8000 --no-autoreload

``chalice.local.ThreadedHTTPServer`` keeps ``socketserver``'s
``request_queue_size`` of 5: when more connections arrive at once than that
queue holds, the kernel resets or drops the rest before a request thread ever
sees them (on a fresh ``make dev``, 23 of 40 simultaneous clients were reset).
Raising that class attribute before chalice builds its server is the smallest
change that fixes it: the server, its request handling and its thread per
request stay chalice's, and so does the command line. ``devtools.dev_server``
runs this with ``--no-autoreload`` and does the reloading itself.
"""

from __future__ import annotations

import sys

from chalice import local
from chalice.cli import main as chalice_main

#: Connections the kernel queues until a thread accepts them (capped by
#: ``net.core.somaxconn``, 4096 on current Linux).
LISTEN_BACKLOG = 1024


def main() -> int:
    """Run chalice's CLI with the larger backlog; the arguments are chalice's."""
    local.ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG
    return chalice_main()


if __name__ == "__main__":
    sys.exit(main())

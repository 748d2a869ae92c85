"""Write the OpenAPI description the app serves to ``docs/openapi.json`` (``make openapi``).

    python -m devtools.openapi            # write it
    python -m devtools.openapi --check    # exit 1 if docs/openapi.json is stale

The document is generated from ``chalicelib.contract``; this copy exists so the
description can be read without running the service.
"""

from __future__ import annotations

import argparse
import json
import sys

from chalicelib.contract.openapi import document
from devtools.dynamodb_local import ROOT

PATH = ROOT / "docs" / "openapi.json"


def rendered() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    args = parser.parse_args(argv)
    if args.check:
        if PATH.read_text() != rendered():
            print(f"{PATH} is stale: run make openapi", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(rendered())
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

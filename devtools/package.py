"""``make package``: the prod CloudFormation (SAM) template and zip, checked by cfn-lint.

    python -m devtools.package [OUT_DIR]     # default: build/package

Runs ``chalice package --stage prod --merge-template deploy/resources.json``
(offline: no AWS credentials or account needed), then ``cfn-lint`` on the
result. The merge template adds the DynamoDB table, points the functions at it
through ``TICKETS_TABLE`` and sets API Gateway throttling; the IAM policies are
``.chalice/policy-prod*.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devtools.dynamodb_local import ROOT

DEFAULT_OUT = ROOT / "build" / "package"
MERGE_TEMPLATE = ROOT / "deploy" / "resources.json"
STAGE = "prod"


def package(out_dir: Path = DEFAULT_OUT) -> Path:
    """Build the template and zip into ``out_dir``; return the template's path."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ}
    # chalice needs *a* region to build its clients; the template is region-free.
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    subprocess.run(
        [
            str(bin_dir / "chalice"),
            "package",
            "--stage",
            STAGE,
            "--merge-template",
            str(MERGE_TEMPLATE),
            str(out_dir),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return out_dir / "sam.json"


def lint(template: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    return subprocess.run(
        [str(bin_dir / "cfn-lint"), str(template)], capture_output=True, text=True, check=False
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else DEFAULT_OUT
    template = package(out_dir)
    result = lint(template)
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        print(f"cfn-lint found problems in {template}", file=sys.stderr)
        return 1
    size = (out_dir / "deployment.zip").stat().st_size
    print(f"{template} (cfn-lint clean) and deployment.zip ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

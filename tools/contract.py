"""Guards the contracts against breaking changes (`make breaking`, part of `make lint`).

`contract/baseline.binpb` is a buf image of the released contracts, committed, and
updated only on purpose (`make baseline`, with a release). `check` builds an image of
the contracts as they are now and lets `buf breaking` compare the two with the rules of
buf.yaml (FILE: what breaks generated code as well as the wire).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASELINE = pathlib.Path("contract") / "baseline.binpb"


def _buf(*args: str, root: pathlib.Path) -> int:
    buf = pathlib.Path(sys.executable).parent / "buf"
    return subprocess.run([str(buf), *args], cwd=root, check=False).returncode


def check(root: pathlib.Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        current = str(pathlib.Path(scratch) / "current.binpb")
        if code := _buf("build", "-o", current, root=root):
            return code
        code = _buf(
            "breaking", current, "--against", str(BASELINE), "--config", "buf.yaml", root=root
        )
    if code:
        print(
            f"the contracts break compatibility with {BASELINE}: keep the old field, add a new "
            "one (or a new API version); run `make baseline` only when releasing on purpose",
            file=sys.stderr,
        )
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "baseline"])
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help="the project to check")
    args = parser.parse_args()
    if args.command == "baseline":
        return _buf("build", "-o", str(BASELINE), root=args.root)
    return check(args.root)


if __name__ == "__main__":
    sys.exit(main())

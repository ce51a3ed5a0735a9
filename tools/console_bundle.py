"""Builds the live console's files (`make gen`, after the stubs): console/ into
gateway/console_assets/.

esbuild (pinned in package.json, from node_modules) bundles console/console.js with what it
imports (the stubs in gen/ts, @connectrpc/connect-web, @bufbuild/protobuf) into one minified
ES module, and minifies console/console.css; the page and its icon are copied as they are.
The output is committed and shipped in the gateway's package (the image has no Node.js), and
`make check-gen` fails when it differs from what this writes: esbuild's output is the same
for the same input and version.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "console"
OUTPUT = ROOT / "gateway" / "console_assets"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
COPIED = ("index.html", "favicon.svg")
# Browsers of the last few years (ES2022: top-level await, class fields, BigInt).
TARGET = "es2022"


def build() -> None:
    node = shutil.which("node")
    if node is None or not ESBUILD.exists():
        sys.exit(
            "tools/console_bundle.py: the console's bundle needs Node.js and node_modules/: "
            "install Node.js 20+, then run `make setup` (it runs `npm ci`)"
        )
    OUTPUT.mkdir(exist_ok=True)
    common = ["--minify", "--log-level=warning", f"--target={TARGET}", "--charset=utf8"]
    env = {"PATH": f"{pathlib.Path(node).parent}:/usr/bin:/bin"}
    subprocess.run(
        [
            str(ESBUILD),
            "console/console.js",
            "--bundle",
            "--format=esm",
            "--legal-comments=eof",
            f"--outfile={OUTPUT.relative_to(ROOT)}/console.js",
            *common,
        ],
        cwd=ROOT,
        check=True,
        env=env,
    )
    subprocess.run(
        [
            str(ESBUILD),
            "console/console.css",
            f"--outfile={OUTPUT.relative_to(ROOT)}/console.css",
            *common,
        ],
        cwd=ROOT,
        check=True,
        env=env,
    )
    for name in COPIED:
        shutil.copyfile(SOURCE / name, OUTPUT / name)


if __name__ == "__main__":
    build()

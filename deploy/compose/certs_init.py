"""compose.yaml's `certs-init`: gives each part its own copy of `make certs`' files.

`make certs` writes keys 0600 for the host's user in a 0700 directory: a container running as
the image's user could not read them bind-mounted. This runs as root once before the parts
start, and copies into `<to>/<part>/` (a volume per part) the CA, the part's certificate and
key, and the issuer's JWKS (`tools/issuer.py keys`), owned by the parts' user, the key 0400:
a part sees no other part's key. Run again on every `docker compose up`, so certificates made
anew reach the parts (which reload them while running).

Standard library only: it runs in the image with the source mounted, nothing installed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
from collections.abc import Sequence

PARTS = ("user_svc", "order_svc", "gateway")
SHARED = ("ca.pem", "jwks.json")


def files_of(part: str) -> tuple[str, ...]:
    """The names a part needs, as `make certs` and `tools/issuer.py keys` write them."""
    return (*SHARED, f"{part}.pem", f"{part}-key.pem")


def copy_all(source: pathlib.Path, target: pathlib.Path, uid: int, gid: int) -> list[pathlib.Path]:
    missing = sorted({n for p in PARTS for n in files_of(p) if not (source / n).is_file()})
    if missing:
        raise SystemExit(
            f"certs-init: {source} lacks {', '.join(missing)}: run `make certs` and "
            "`.venv/bin/python tools/issuer.py keys` first"
        )
    written = []
    for part in PARTS:
        directory = target / part
        directory.mkdir(parents=True, exist_ok=True)
        for name in files_of(part):
            path = directory / name
            tmp = directory / f".{name}.tmp"
            shutil.copyfile(source / name, tmp)
            os.chown(tmp, uid, gid)
            tmp.chmod(0o400 if name.endswith("-key.pem") else 0o444)
            tmp.replace(path)  # whole or not at all: a running part may be reading it
            written.append(path)
        os.chown(directory, uid, gid)
        directory.chmod(0o500)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=pathlib.Path, required=True)
    parser.add_argument("--to", dest="target", type=pathlib.Path, required=True)
    parser.add_argument("--owner", required=True, help="uid:gid of the parts' user")
    args = parser.parse_args(argv)
    uid, _, gid = args.owner.partition(":")
    written = copy_all(args.source, args.target, int(uid), int(gid or uid))
    print(f"certs-init: {len(written)} files for {', '.join(PARTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The data directory and its files, readable by this user only: the databases hold every
user's e-mail address, and the key files sign page tokens."""

from __future__ import annotations

import contextlib
import os
import pathlib

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: pathlib.Path) -> None:
    """Creates `path` (and its parents) if missing; the directory itself 0700. A directory
    that exists already is left as it is: it may be shared (an operator's choice)."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def private_file(path: pathlib.Path) -> None:
    """Creates `path` empty if missing, 0600; an existing file of ours is made 0600. (SQLite
    gives its -wal and -shm files the mode of the database file.)"""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    os.close(fd)
    with contextlib.suppress(PermissionError):  # not ours to change
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_FILE)

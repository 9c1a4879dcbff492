"""Locate server binaries on PATH and in the Debian locations that are not on PATH."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from .errors import ServiceUnavailable

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
POSTGRES_LIB = Path("/usr/lib/postgresql")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binary(name: str, package: str, extra_dirs: Iterable[str] = SBIN_DIRS) -> str:
    """Return the path of `name` from PATH or `extra_dirs`, else raise ServiceUnavailable."""
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if _executable(candidate):
            return str(candidate)
    raise ServiceUnavailable(name, package)


def _version_key(bindir: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin, so that 15 sorts above 9.6."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def postgres_bindirs() -> list[Path]:
    """Candidate directories: the one of `postgres` on PATH, then Debian's, highest version first."""
    on_path = shutil.which("postgres")
    debian = sorted(POSTGRES_LIB.glob("*/bin"), key=_version_key, reverse=True)
    return ([Path(on_path).resolve().parent] if on_path else []) + debian


def find_postgres_bindir() -> Path:
    """Return the first directory holding both `postgres` and `initdb`."""
    for bindir in postgres_bindirs():
        if _executable(bindir / "postgres") and _executable(bindir / "initdb"):
            return bindir
    raise ServiceUnavailable("postgres and initdb", "postgresql")

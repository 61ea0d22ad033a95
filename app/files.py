"""Files the gateway creates are its owner's alone (docs/security.md, "Files"): directories 0700, files 0600.

The SQLite database holds client secret hashes, grants and the audit log; the key directory holds the keys that
encrypt signing keys and hash residents' IDs; checkpoint files are the evidence a verifier trusts. Another local
account has no business reading or replacing any of them. Modes are given when a file or directory is created,
whatever the process's umask; what already exists is left as the operator made it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

DIRECTORY_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def private_directory(path: Path) -> None:
    """``path`` and every missing parent, each created with mode 0700 (``mkdir(parents=True, mode=...)``
    gives the mode to the last one only)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # another worker made it meanwhile
            continue
        os.chmod(directory, DIRECTORY_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (a database file SQLite then opens: SQLite gives
    its ``-wal`` and ``-shm`` files the database file's mode)."""
    private_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)

"""Files the gateway creates are its owner's alone (docs/security.md, "Files"): directories 0700, files 0600.

The SQLite database holds client secret hashes, grants and the audit log; the key directory holds the keys that
encrypt signing keys and hash residents' IDs; checkpoint files are the evidence a verifier trusts. Another local
account has no business reading or replacing any of them. Modes are given when a file or directory is created,
whatever the process's umask; what already exists is left as the operator made it.
"""

from __future__ import annotations

import os
import secrets
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


def write_private_file(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` atomically, mode 0600: a draft beside it, written and fsynced, then put in
    place and the directory fsynced, so a reader or a crash sees the old content or the new, never half.

    ``replace=True`` renames the draft over whatever is there. ``replace=False`` links it in only if ``path``
    does not exist yet, so concurrent workers creating the same file (a generated key) all end up with the
    first one's; it returns False when another had got there first and nothing was written.
    """
    private_directory(path.parent)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(draft, path)
        else:
            try:
                os.link(draft, path)
            except FileExistsError:
                return False
    finally:
        draft.unlink(missing_ok=True)  # gone after a rename; the spare name after a link
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True

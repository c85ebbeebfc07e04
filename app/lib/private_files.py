"""Files that hold callers' data (numbers, transcripts): readable by the service's own user only.

The outbox journal, the embedded queue and the SQLite database live under `DATA_DIR`; a process's default
umask would make them world-readable (0644). `private_file` creates the file 0600 before SQLite opens it
(SQLite gives its -wal and -shm files the main file's mode) and keeps its folder 0700.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_file(path: Path, *, tighten_folder: bool = True) -> Path:
    """Create `path` (and its folder) readable by this user only, or tighten them if they exist.

    `tighten_folder=False` leaves an existing folder's mode alone: for a path the operator chose freely (a
    SQLite `DATABASE_URL` may sit in their working directory), not the service's own `DATA_DIR`.
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    elif tighten_folder:
        # A folder we do not own (a mounted volume's root) keeps its mode.
        with contextlib.suppress(PermissionError):
            os.chmod(folder, FOLDER_MODE)
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)
    return path

"""The data folder and the SQLite database: for the server's user only, always.

The folder holds the device CA's private key; the database holds every device's digest
credentials and every admin's password hash. So the folder is 0700 and the database file (and
the -wal/-shm files SQLite keeps beside it) 0600, however they came to be: made by `winmdm serve`,
by `winmdm admin create` before the first start, or left wider by an older winmdm (mended at
every start).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("winmdm.data_dir")

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def prepare_folder(path: Path) -> None:
    """Create the folder (and its parents) if needed; make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    _restrict(path, FOLDER_MODE)


def prepare_sqlite_file(path: Path) -> None:
    """Create an empty database file 0600 before SQLite does (SQLite gives its -wal and -shm
    files the database file's mode); an existing one, and its companions, are made 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SQLITE_COMPANIONS)):
        if candidate.exists():
            _restrict(candidate, FILE_MODE)


def _restrict(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            os.chmod(path, mode)
            log.warning("%s was readable by others (mode %o): made %o", path, current, mode)
    except OSError as exc:
        log.warning(
            "cannot make %s mode %o (%s): only the server's user should read it", path, mode, exc.strerror
        )

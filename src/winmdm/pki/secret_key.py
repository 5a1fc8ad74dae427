"""Symmetric keys winmdm keeps in its data dir (download links, enrollment tokens, page state).

32 random bytes, mode 0600 from the start, written aside and linked into place so a second
process starting at the same moment reads a whole key or makes none. Every instance sharing the
database must share these files, as they share the device CA.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from winmdm.errors import ConfigError

KEY_BYTES = 32


def load_or_create_secret_key(path: Path, *, if_lost: str) -> bytes:
    """The key in `path`, made on first use. `if_lost` says what deleting it breaks."""
    if not path.exists():
        aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            aside.unlink()
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigError(
            "WINMDM_DATA_DIR",
            f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte key; copy it from another "
            f"winmdm instance of this installation, or delete it to make a new one ({if_lost})",
        )
    return key

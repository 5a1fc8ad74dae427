"""Where the shared vectors and schemas live, for every test that reads them."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("WINMDM_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
VECTORS = SHARED / "vectors"
SCHEMAS = SHARED / "schemas"


def vector(relative: str) -> bytes:
    path = VECTORS / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"shared vector {path} is missing: check out shared/ beside the repository "
            "or set WINMDM_SHARED_DIR"
        )
    return path.read_bytes()


def family(name: str) -> list[str]:
    folder = VECTORS / name
    if not folder.is_dir():
        raise FileNotFoundError(f"shared vectors folder {folder} is missing (set WINMDM_SHARED_DIR)")
    return sorted(f"{name}/{p.name}" for p in folder.iterdir() if p.is_file())

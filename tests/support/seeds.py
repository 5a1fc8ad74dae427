"""Key material made once per test process and copied into each test's new data folder.

Every `winmdm serve` and every in-process runtime would otherwise generate an RSA 3072 device
CA, a development TLS root and a server key at its first start: most of the suite's time.
Tests of that first start itself (tests/cli/test_serve.py) ask for an empty folder instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from winmdm.pki.ca import DeviceCA
from winmdm.pki.tls import ensure_dev_tls


@functools.cache
def _template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="winmdm-test-keys-"))
    now = datetime.now(UTC) - timedelta(days=1)
    DeviceCA.load_or_create(folder, common_name="Corp Example Device CA", now=now)
    ensure_dev_tls(folder / "tls", "localhost", now=now)
    return folder


def seed_data_dir(data_dir: Path) -> Path:
    """Give a data folder that does not exist yet this run's device CA and dev TLS files, with
    the modes winmdm keeps them in; an existing folder is left alone. Returns the folder."""
    if not data_dir.exists():
        shutil.copytree(_template(), data_dir)
        os.chmod(data_dir, 0o700)
    return data_dir

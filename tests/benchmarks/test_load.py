"""benchmarks/load.py end to end, kept small: it starts its own `winmdm serve`, enrolls three
emulated PCs over HTTPS, drives their check-ins and queues one command each through the API.
Only what it verified is checked here, never its timings (design.md §4)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_load_run_delivers_every_queued_command_once() -> None:
    arguments = ["--devices", "3", "--rate", "5", "--duration", "3", "--commands", "1"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load.py"), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"^enrolled 3 devices .*; 0 failed$", out, re.M), out
    assert re.search(r"^sessions:\s+\d+ completed of \d+ scheduled", out, re.M), out
    assert re.search(r"^errors:\s+0$", out, re.M), out
    assert re.search(r"^commands:\s+3 queued of 3 through the API .*; 0 refused$", out, re.M), out
    assert re.search(r"^acknowledged:\s+3 of 3 ", out, re.M), out
    assert re.search(r"^duplicates:\s+0 ", out, re.M), out
    assert re.search(r"never delivered 0, not acknowledged by the device 0", out), out
    assert re.search(
        r"^verdict:\s+OK \(every queued command delivered once and acknowledged\)$", out, re.M
    ), out
    assert "\x1b[" not in out, "no progress bar when stdout is not a terminal"

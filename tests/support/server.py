"""Runs the real `winmdm serve` in a subprocess, as an admin would, and waits until it answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.seeds import seed_data_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def winmdm_command() -> list[str]:
    found = shutil.which("winmdm", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "winmdm"]


@dataclass
class RunningServer:
    process: subprocess.Popen
    url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path

    @property
    def discovery_url(self) -> str:
        return self.url + "/EnrollmentServer/Discovery.svc"

    @property
    def dev_ca(self) -> Path:
        return self.data_dir / "tls" / "dev-tls-ca.crt"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(verify=_ssl_context(self.dev_ca), timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ssl_context(ca: Path):
    import ssl

    return ssl.create_default_context(cafile=str(ca))


def start_server(
    data_dir: Path,
    extra_env: dict[str, str],
    *,
    timeout: float = 60,
    command: list[str] | None = None,
    preexec_fn=None,
    port: int | None = None,
    seeded: bool = True,
) -> RunningServer:
    """`winmdm serve` on `data_dir` (a new port unless given: a restart keeps its URL). A new
    data folder gets the run's keys (tests/support/seeds.py) unless `seeded` is False."""
    port = port or free_port()
    if seeded:
        seed_data_dir(data_dir)
    url = f"https://localhost:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINMDM_")}
    env.update(
        {"WINMDM_DATA_DIR": str(data_dir), "WINMDM_SERVER_URL": url, "WINMDM_LISTEN": f"127.0.0.1:{port}"}
    )
    env.update(extra_env)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        command or [*winmdm_command(), "serve"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )
    server = RunningServer(process, url, data_dir, env, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"winmdm serve exited with {process.returncode}:\n{server.log()}")
        if server.dev_ca.exists() or "WINMDM_TLS_CERT" in extra_env:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return server
            except OSError:
                pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"winmdm serve did not start within {timeout}s:\n{server.log()}")

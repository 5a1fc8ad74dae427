"""osquery's status and result logs kept as JSON lines in files, rotated by size.

Like osquery's own filesystem logger plugin and Fleet's default log destination: one file per
log type (`status.log`, `result.log`), each line the JSON object osquery sent with
`winmdm_host_id` added, so a log shipper or `jq` can take them from there. The files are bounded:
at `max_bytes` a file is rotated, and `backups` old files are kept (docs/agent-channel.md "Logs").
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path
from typing import Protocol

LOG_TYPES = ("status", "result")
HOST_KEY = "winmdm_host_id"


class AgentLogSink(Protocol):
    def write(self, log_type: str, host_id: int, lines: list[object]) -> None: ...

    def close(self) -> None: ...


class AgentLogFiles:
    """Appends log lines; the stdlib's rotating handler does the rotation under its own lock."""

    def __init__(self, folder: Path, *, max_bytes: int, backups: int = 5) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._handlers: dict[str, logging.handlers.RotatingFileHandler] = {}
        for log_type in LOG_TYPES:
            handler = logging.handlers.RotatingFileHandler(
                folder / f"{log_type}.log",
                maxBytes=max_bytes,
                backupCount=backups,
                encoding="utf-8",
                delay=True,
            )
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handlers[log_type] = handler

    def write(self, log_type: str, host_id: int, lines: list[object]) -> None:
        handler = self._handlers[log_type]
        for line in lines:
            record = logging.makeLogRecord({"msg": json_line(host_id, line), "levelno": logging.INFO})
            handler.handle(record)
        handler.flush()

    def close(self) -> None:
        for handler in self._handlers.values():
            handler.close()


def json_line(host_id: int, line: object) -> str:
    """One line of JSON: an object gets the host id (winmdm's, over any the agent sent); anything
    else is wrapped."""
    value = {**line, HOST_KEY: host_id} if isinstance(line, dict) else {"line": line, HOST_KEY: host_id}
    # ensure_ascii keeps a lone surrogate osquery may send writable as its \\u escape.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)

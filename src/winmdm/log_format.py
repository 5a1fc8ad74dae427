"""How `winmdm serve` writes its log: readable text (the default) or one JSON object per line.

`WINMDM_LOG_FORMAT=json` is for log collectors: every line is a JSON object with `time`, `level`,
`logger`, `message`, the ids the line is about when known (host, device, enrollment activity,
session, admin: winmdm.log_context) and, for uvicorn's access lines, method, path and status.

No secret reaches the log (a test drives enrollment, check-ins and sign-in and looks): winmdm's
own messages name ids, never tokens; the access line is the one place a client's text is
written, so its query values and the agent download link's signed token are replaced by
"[redacted]" (an OIDC authorization code, a deep link's token, a download signature).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from uvicorn.config import LOGGING_CONFIG

from winmdm import log_context
from winmdm.services.agent import DOWNLOAD_PREFIX, DOWNLOAD_SUFFIX

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
# Query parameters whose values say nothing secret and help reading the log.
_PLAIN_PARAMETERS = frozenset({"mode", "Platform", "page", "per_page", "team_id", "api-version"})
_DOWNLOAD = re.compile(re.escape(DOWNLOAD_PREFIX) + r"[^/?]+?" + re.escape(DOWNLOAD_SUFFIX))
# Attributes a record may carry (logging's `extra=`) that a JSON line shows.
_EXTRA = (*log_context.FIELDS, "method", "path", "status", "client")


def redact_target(target: str) -> str:
    """A request target (path and query) without what may be a credential."""
    path, sep, query = target.partition("?")
    path = _DOWNLOAD.sub(f"{DOWNLOAD_PREFIX}{REDACTED}{DOWNLOAD_SUFFIX}", path)
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = "&".join(
        f"{quote(name, safe='')}={quote(value, safe='') if name in _PLAIN_PARAMETERS else REDACTED}"
        for name, value in pairs
    )
    return f"{path}?{shown}"


class RedactAccess(logging.Filter):
    """uvicorn's access line (args: client, method, target, HTTP version, status) with its
    target redacted; the parts are also kept as attributes for the JSON line."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, target, version, status = args
            target = redact_target(str(target))
            record.args = (client, method, target, version, status)
            record.client, record.method, record.path, record.status = client, method, target, status
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(log_context.current())
        for key in _EXTRA:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """The root logger's one handler (stderr), in `fmt` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level != "debug":
        # Alembic's per-start chatter would bury the one line a bad setting prints.
        logging.getLogger("alembic").setLevel(logging.WARNING)


def uvicorn_log_config(fmt: str) -> dict[str, Any]:
    """uvicorn's own logging setup: unchanged in text mode but for the redacted access line;
    in JSON mode the same loggers, written as JSON lines to stderr."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactAccess}}
    if fmt == "json":
        config["formatters"] = {"json": {"()": JsonFormatter}}
        config["handlers"] = {
            "default": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        }
    config["handlers"]["access"]["filters"] = ["redact"]
    return config

"""The log's two formats, the ids a line carries, and what the access line never shows."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading

import pytest

from winmdm import log_context
from winmdm.log_format import TEXT_FORMAT, JsonFormatter, RedactAccess, redact_target, uvicorn_log_config
from winmdm.metrics import path_label, status_label


def record(message: str, *args: object, name: str = "winmdm.test", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/ManagementServer/MDM.svc?mode=Maintenance&Platform=WoA", None),
        (
            "/EnrollmentServer/Authenticate/callback?code=abc123&state=xyz",
            "/EnrollmentServer/Authenticate/callback?code=[redacted]&state=[redacted]",
        ),
        (
            "/EnrollmentServer/Discovery.svc?token=eyJhbGciOi.payload.sig",
            "/EnrollmentServer/Discovery.svc?token=[redacted]",
        ),
        ("/agent/AbC-123_signed.token.msi", "/agent/[redacted].msi"),
        ("/api/v1/hosts?page=2&query=alice", "/api/v1/hosts?page=2&query=[redacted]"),
        ("/healthz", None),
        # osquery's --tls_secret_always puts the enroll secret in the query string; a node key
        # sent as a parameter is as secret (docs/agent-channel.md).
        (
            "/api/osquery/config?enroll_secret=s3cr3t&node_key=k3y",
            "/api/osquery/config?enroll_secret=[redacted]&node_key=[redacted]",
        ),
        ("/api/osquery/distributed/read", None),
    ],
)
def test_the_access_target_keeps_no_credential(target: str, shown: str | None) -> None:
    assert redact_target(target) == (shown or target)


def test_the_access_line_is_redacted_for_both_formats() -> None:
    line = record(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.7:5000", "GET", "/agent/secret.msi?sig=s3cr3t", "1.1", 200
    )
    assert RedactAccess().filter(line)
    assert "s3cr3t" not in line.getMessage() and "secret" not in line.getMessage()
    shown = json.loads(JsonFormatter().format(line))
    assert shown["path"] == "/agent/[redacted].msi?sig=[redacted]"
    assert (shown["method"], shown["status"], shown["client"]) == ("GET", 200, "10.0.0.7:5000")
    config = uvicorn_log_config("text")
    assert config["handlers"]["access"]["filters"] == ["redact"]
    assert config["formatters"]["default"]["()"] == "uvicorn.logging.DefaultFormatter"  # text as before


def test_a_json_line_carries_the_request_ids_bound_anywhere_in_it() -> None:
    with log_context.request_scope():
        log_context.bind(activity="5a1c", device=None)

        def service() -> None:  # a worker thread runs in a copy of the request's context
            log_context.bind(device="DEV-1", host=42)

        worker = threading.Thread(target=contextvars.copy_context().run, args=(service,))
        worker.start()
        worker.join()
        line = json.loads(JsonFormatter().format(record("enrolled %s", "DEV-1\nnext")))
    assert line["message"] == "enrolled DEV-1\nnext"
    assert (line["activity"], line["device"], line["host"]) == ("5a1c", "DEV-1", "42")
    assert {"time", "level", "logger"} <= set(line) and line["time"].endswith("Z")
    assert "activity" not in json.loads(JsonFormatter().format(record("outside")))  # the scope ended
    with pytest.raises(ValueError):
        log_context.bind(password="x")


def test_an_exception_stays_on_its_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord("winmdm", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(failed)
    assert "\n" not in text
    assert "RuntimeError: boom" in json.loads(text)["exception"]
    assert logging.Formatter(TEXT_FORMAT).format(record("plain")).endswith("WARNING winmdm.test: plain")


def test_label_values_are_bounded() -> None:
    assert [status_label(c) for c in (200, 418, 299, 1234, None)] == ["200", "418", "2xx", "other", "none"]
    assert path_label("Settings: device management only") == "mdm_only"
    assert path_label(None) == path_label("made up") == "unknown"

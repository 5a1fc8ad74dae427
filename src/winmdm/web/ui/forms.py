"""Form bodies of the UI: application/x-www-form-urlencoded, and multipart/form-data for file
uploads (a profile's SyncML, the agent MSI). Read with a bound, parsed with the standard library."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import Parser
from urllib.parse import parse_qs

from starlette.requests import Request

from winmdm.errors import MalformedMessage
from winmdm.web.body import read_bounded

MAX_FIELDS = 200
FORM_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def text(self, name: str) -> str:
        return self.get(name).strip()

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, ()))

    def has(self, name: str) -> bool:
        return name in self.fields

    def flag(self, name: str) -> bool:
        """A checkbox: sent (with any of the usual values) means checked."""
        return self.get(name, "").strip().lower() in ("on", "true", "1", "yes")

    def file(self, name: str) -> Upload | None:
        found = self.files.get(name)
        return found if found is not None and (found.filename or found.data) else None


async def read_form(request: Request, limit: int = FORM_LIMIT) -> Form:
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    body = await read_bounded(request, limit)
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind == "multipart/form-data":
        return _multipart(content_type, body)
    return Form()


def _urlencoded(body: bytes) -> Form:
    try:
        text = body.decode("utf-8")
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise MalformedMessage("the form is not valid UTF-8 form data") from None
    return Form(fields=parsed)


def _multipart(content_type: str, body: bytes) -> Form:
    """RFC 7578 form data. The body is split on its boundary with bytes operations (an MSI of
    many megabytes is never parsed line by line); only each part's headers go to the email
    parser, for their parameters (name, filename, RFC 2231 encodings)."""
    boundary = _header(f"Content-Type: {content_type}").get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise MalformedMessage("the upload has no multipart boundary")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        raise MalformedMessage("the upload is not multipart form data")
    if len(chunks) > MAX_FIELDS + 2:
        raise MalformedMessage("the form has too many fields")
    fields: dict[str, list[str]] = {}
    files: dict[str, Upload] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, found, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not found or len(head) > 8192:
            raise MalformedMessage("a part of the upload has no headers")
        data = data.removesuffix(b"\r\n")
        headers = _header(head.decode("utf-8", "replace"))
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        filename = headers.get_filename()
        if filename is not None:
            files[name] = Upload(filename, headers.get_content_type(), data)
        else:
            try:
                fields.setdefault(name, []).append(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise MalformedMessage(f"the form field {name!r} is not UTF-8 text") from None
    return Form(fields=fields, files=files)


def _header(text: str) -> Message:
    return Parser(policy=policy.HTTP).parsestr(text.strip() + "\r\n\r\n", headersonly=True)

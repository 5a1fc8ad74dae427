"""The UI's own parsing, without a browser: form bodies (uploads byte for byte) and the page a
sign-in may return to."""

from __future__ import annotations

import os

import pytest

from winmdm.errors import MalformedMessage
from winmdm.web.ui.auth_routes import safe_next
from winmdm.web.ui.forms import _multipart, _urlencoded

BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


def multipart(*parts: bytes) -> bytes:
    body = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + BOUNDARY.encode() + b"--\r\n"


@pytest.mark.parametrize("tail", [b"", b"\r", b"\n", b"\r\n", b"\n\r", b"--"])
def test_an_upload_arrives_byte_for_byte(tail: bytes) -> None:
    data = os.urandom(4096) + tail
    body = multipart(
        b'Content-Disposition: form-data; name="csrf_token"\r\n\r\n' + "jeton-é".encode(),
        b'Content-Disposition: form-data; name="msi"; filename="agent setup.msi"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data,
    )
    form = _multipart(f"multipart/form-data; boundary={BOUNDARY}", body)
    assert form.get("csrf_token") == "jeton-é"
    upload = form.file("msi")
    assert upload is not None
    assert (upload.filename, upload.content_type, upload.data) == (
        "agent setup.msi",
        "application/octet-stream",
        data,
    )


def test_an_empty_file_field_is_no_file() -> None:
    body = multipart(b'Content-Disposition: form-data; name="file"; filename=""\r\n\r\n')
    assert _multipart(f"multipart/form-data; boundary={BOUNDARY}", body).file("file") is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"x"),
        (f"multipart/form-data; boundary={BOUNDARY}", b"no parts at all"),
        (f"multipart/form-data; boundary={BOUNDARY}", multipart(b"no blank line after the headers")),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            multipart(b'Content-Disposition: form-data; name="t"\r\n\r\n\xff'),
        ),
    ],
)
def test_malformed_form_data_is_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        _multipart(content_type, body)


def test_urlencoded_forms() -> None:
    form = _urlencoded(b"a=1&a=2&flag=on&empty=&name=R%C3%A9gion+Nord")
    assert form.getlist("a") == ["1", "2"]
    assert form.flag("flag") and not form.flag("empty") and not form.flag("missing")
    assert form.has("empty") and form.text("name") == "Région Nord"
    with pytest.raises(MalformedMessage):
        _urlencoded(b"name=%FF%FE\xff")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/hosts?mdm_status=on_manual", "/hosts?mdm_status=on_manual"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/hosts\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_sign_in_returns_only_to_a_page_of_this_site(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected

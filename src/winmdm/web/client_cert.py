"""The device's TLS client certificate, as the management endpoint sees it (protocol.md decision 4).

uvicorn asks for and verifies client certificates (`ssl_cert_reqs=CERT_OPTIONAL`, the device CA
as `ssl_ca_certs`) but does not hand the peer certificate to the app. TLSScopeMixin (part of the
protocol classes of web/connections.py) adds the ASGI TLS extension
(https://asgi.readthedocs.io/en/latest/specs/tls.html) to every request's scope. Behind a
TLS-terminating reverse proxy the certificate comes in a header instead, trusted only from
configured proxy addresses: `peer_certificate` reads either.

uvicorn internals relied on (hence uvicorn is pinned; tests/web/test_client_cert.py runs a real
server over TLS with both classes):
- `HttpToolsProtocol` and `H11Protocol` keep the ASGI app in the instance attribute `self.app`
  (set in `__init__` from `config.loaded_app`) and read it anew for every request
  (`on_headers_complete` / `handle_events`), passing the scope dict they just built;
- `connection_made(transport)` runs once per connection, after the TLS handshake, and the
  transport answers `get_extra_info("ssl_object")` (asyncio and uvloop both do).
Wrapping `self.app` per connection puts the extension into the very scope dict uvicorn built,
before any middleware, for both implementations, without copying uvicorn's scope-building code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import ipaddress
import logging
import ssl
import urllib.parse
from collections.abc import Iterable
from typing import Any, Final, TypeAlias

from cryptography import x509

logger = logging.getLogger(__name__)

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
TLSInfo: TypeAlias = dict[str, Any]

# ASGI TLS extension: tls_version is the TLS record version number.
_TLS_VERSIONS: Final = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_PEM_MARKER: Final = "-----BEGIN CERTIFICATE-----"
# A DER certificate of a few kB, URL-encoded PEM is about 1.5x that; anything far larger is junk.
MAX_HEADER_LENGTH: Final = 16 * 1024
_WARNED_KEY: Final = "winmdm.client_cert.warned"


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> TLSInfo:
    """The ASGI `tls` extension for one TLS connection (the client chain is the leaf only:
    Python's ssl module exposes no more of the verified chain)."""
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:  # OpenSSL accepted it; cryptography is stricter on some encodings
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            logger.warning("client certificate accepted by OpenSSL is unreadable by cryptography")
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_suite_id(ssl_object.context, cipher[0]) if cipher else None,
    }


def _cipher_suite_id(context: ssl.SSLContext, name: str) -> int | None:
    """The IANA 16-bit cipher suite id of an OpenSSL cipher name (low bits of OpenSSL's id)."""
    return _cipher_ids(context).get(name)


@functools.lru_cache(maxsize=8)  # SSLContext hashes by identity; a server has one
def _cipher_ids(context: ssl.SSLContext) -> dict[str, int]:
    return {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}


class TLSScopeMixin:
    """Adds `scope["extensions"]["tls"]` to every request of a TLS connection."""

    app: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            tls = tls_extension(ssl_object)  # once: one TLS connection, one peer certificate
            inner = self.app

            async def app(scope: Any, receive: Any, send: Any) -> None:
                # A fresh dict per request so the app cannot leak changes into the next one.
                scope.setdefault("extensions", {})["tls"] = dict(tls)
                await inner(scope, receive, send)

            self.app = app
        super().connection_made(transport)  # type: ignore[misc]


def peer_certificate(
    scope: dict[str, Any] | Any, *, trusted_proxies: Iterable[Network], header_name: str
) -> x509.Certificate | None:
    """The client certificate of this request, or None.

    First the ASGI TLS extension (a certificate uvicorn already verified against the device CA).
    Otherwise the header `header_name`, but only when the TCP peer is inside `trusted_proxies`:
    a TLS-terminating proxy sends the device certificate there, as nginx's
    `$ssl_client_escaped_cert` (URL-encoded PEM) or as base64 DER. The proxy vouches only that
    the device holds the key; the caller still checks the chain, validity and the device.
    A header from anyone else is ignored (warned once per request); malformed values give None.
    """
    tls = (scope.get("extensions") or {}).get("tls")
    if tls and tls.get("client_cert_chain"):
        try:
            return _load_pem(tls["client_cert_chain"][0])
        except ValueError:
            logger.warning("unreadable certificate in the ASGI tls extension")
            return None
    wanted = header_name.lower().encode("latin-1")
    values = [v for k, v in scope.get("headers") or () if k.lower() == wanted]
    if not values:
        return None
    peer = _peer_address(scope)
    if peer is None or not any(peer in net for net in trusted_proxies if peer.version == net.version):
        if not scope.get(_WARNED_KEY):
            scope[_WARNED_KEY] = True
            logger.warning(
                "ignoring client certificate header %s from %s: not a trusted proxy",
                header_name,
                peer or "an unknown address",
            )
        return None
    if len(values) != 1:
        logger.warning("%d %s headers from proxy %s: refusing all", len(values), header_name, peer)
        return None
    cert = parse_certificate_header(values[0])
    if cert is None:
        logger.warning("malformed client certificate header %s from proxy %s", header_name, peer)
    return cert


def parse_certificate_header(value: bytes | str) -> x509.Certificate | None:
    """A certificate from URL-encoded PEM, plain PEM, or base64 DER (URL-encoded or not); None
    for anything else."""
    if len(value) > MAX_HEADER_LENGTH:
        return None
    try:
        text = value.decode("ascii") if isinstance(value, bytes) else value
        # unquote, not unquote_plus: '+' is a base64 character, nginx escapes it as %2B.
        text = urllib.parse.unquote(text, errors="strict").strip()
        if not text:
            return None
        if _PEM_MARKER in text:
            return _load_pem(text)
        der = base64.b64decode("".join(text.split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error, UnicodeError):
        return None


@functools.lru_cache(maxsize=1024)
def _load_pem(pem: str) -> x509.Certificate:
    # Cached: one device sends the same certificate on every message of every session.
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def _peer_address(scope: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        address = ipaddress.ip_address(str(client[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address

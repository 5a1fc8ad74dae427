"""winmdm's settings: `WINMDM_*` environment variables and, equally, a TOML file.

Every setting is listed once in SETTINGS and documented in docs/configuration.md (a test keeps the
two in step). The environment wins over the file. A bad value stops the server with one line
naming the setting and what is wrong (ConfigError).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from winmdm.errors import ConfigError
from winmdm.protocol.provisioning import PollSchedule

MICROSOFT_JWKS_URL = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class Setting:
    key: str  # TOML key; the environment variable is WINMDM_<KEY>
    default: str  # as documented
    help: str

    @property
    def env(self) -> str:
        return "WINMDM_" + self.key.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./winmdm-data", "Folder for the database, the device CA and the dev TLS files."),
    Setting("database_url", "sqlite:///<data_dir>/winmdm.db", "SQLite file or postgresql:// URL."),
    Setting("server_url", "https://localhost:8443", "Public https base URL Windows reaches winmdm at."),
    Setting("listen", "<server_url's port, on 127.0.0.1 or 0.0.0.0>", "host:port to listen on."),
    Setting("tls_cert", "(dev certificate)", "PEM server certificate chain; with tls_key."),
    Setting("tls_key", "(dev key)", "PEM private key of tls_cert."),
    Setting("entra_tenant_ids", "(none)", "Comma-separated Entra tenant ids allowed to enroll."),
    Setting("entra_jwks_url", MICROSOFT_JWKS_URL, "JWKS of the Entra signing keys (http only on loopback)."),
    Setting(
        "entra_audiences", "<server_url>", "Comma-separated accepted token audiences (App ID URI, client id)."
    ),
    Setting("poll_schedule", "3x5,15x8,480", "DMClient poll schedule: MINxCOUNT,MINxCOUNT,MIN."),
    Setting("certificate_days", "365", "Lifetime of issued device certificates, in days."),
    Setting("renewal_days", "42", "Days before expiry when Windows renews its certificate."),
    Setting(
        "max_body_bytes",
        "1048576",
        "Largest request body accepted on the device endpoints and osquery's log and distributed write.",
    ),
    Setting("header_timeout", "10", "Seconds a client has to send a request's headers."),
    Setting("body_timeout", "30", "Seconds a request body may take (longer ones at 16 KiB/s at least)."),
    Setting("max_connections", "1000", "Open connections at most; more are refused with 503."),
    Setting("organization", "winmdm", "Name shown to users and used in certificate names."),
    Setting("log_level", "info", "debug, info, warning or error."),
    Setting("log_format", "text", "text (readable lines) or json (one JSON object per line)."),
    Setting(
        "metrics_token",
        "(none: /metrics needs no token)",
        "Bearer token Prometheus must send to scrape /metrics.",
    ),
    Setting(
        "metrics_listen",
        "(none: /metrics on the main port)",
        "host:port of a separate plain-HTTP listener for /metrics (then not served on the main port).",
    ),
    Setting(
        "trusted_proxies",
        "(none)",
        "Addresses or networks (comma-separated) of TLS-terminating proxies that pass device certificates.",
    ),
    Setting("client_cert_header", "X-SSL-Client-Cert", "Header such a proxy puts the device certificate in."),
    Setting("oidc_issuer", "(none)", "OIDC identity provider for the sign-in page (https issuer URL)."),
    Setting("oidc_client_id", "(none)", "Client id of winmdm at that identity provider."),
    Setting("oidc_client_secret", "(none)", "Client secret of winmdm at that identity provider."),
    Setting(
        "end_user_auth",
        "false",
        "No team requires end-user authentication: the Entra terms page also signs in with the OIDC IdP.",
    ),
    Setting(
        "host_merge_after_days",
        "30",
        "Days a host must be silent before a PC reporting its hardware ids or serial may become it.",
    ),
    Setting(
        "allowed_appru",
        "(none: ms-app:// only)",
        "Comma-separated exact https return addresses the sign-in page may also post its token to.",
    ),
    Setting(
        "osquery_log_dir",
        "<data_dir>/osquery-logs",
        "Folder for the agents' status.log and result.log (JSON lines, rotated); off keeps none.",
    ),
    Setting(
        "osquery_log_max_mb", "100", "Size in MiB at which an osquery log file is rotated (5 old files kept)."
    ),
    Setting("license_key", "(none: Free)", "Premium license key (a signed JWT); without a valid one, Free."),
    Setting(
        "license_public_key_file",
        "(the key shipped in winmdm)",
        "PEM EC P-256 public key that license keys are checked with.",
    ),
)
_KEYS = {s.key for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    database_url: str
    server_url: str
    server_host: str
    listen_host: str
    listen_port: int
    tls_cert: Path | None
    tls_key: Path | None
    entra_tenant_ids: tuple[str, ...]
    entra_jwks_url: str
    entra_audiences: tuple[str, ...]
    poll_schedule: PollSchedule
    certificate_days: int
    renewal_days: int
    max_body_bytes: int
    organization: str
    log_level: str
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    client_cert_header: str = "X-SSL-Client-Cert"
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    end_user_auth: bool = False
    license_key: str | None = None
    license_public_key_file: Path | None = None
    host_merge_after_days: int = 30
    allowed_appru: tuple[str, ...] = ()
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    log_format: str = "text"
    metrics_token: str | None = field(default=None, repr=False)  # a secret: never in a repr
    metrics_listen: tuple[str, int] | None = None  # None: /metrics is served on the main port
    osquery_log_dir: Path | None = None  # None: osquery's logs are counted, not kept
    osquery_log_max_bytes: int = 100 * 1024 * 1024


def load_config(env: Mapping[str, str], config_file: Path | None = None) -> Config:
    raw = _read_file(config_file) if config_file else {}
    for setting in SETTINGS:
        if setting.env in env and env[setting.env].strip() != "":
            raw[setting.key] = env[setting.env]
    get = raw.get

    data_dir = Path(str(get("data_dir", "./winmdm-data"))).expanduser().resolve()
    server_url, server_host, server_port = _server_url(str(get("server_url", "https://localhost:8443")))
    loopback = _is_loopback(server_host)
    listen_host, listen_port = _listen(
        str(get("listen", f"{'127.0.0.1' if loopback else '0.0.0.0'}:{server_port}"))
    )
    database_url = str(get("database_url", f"sqlite:///{data_dir / 'winmdm.db'}"))
    if not database_url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")):
        raise ConfigError("WINMDM_DATABASE_URL", "must be a sqlite:/// or postgresql:// URL")
    tls_cert, tls_key = _path(get("tls_cert"), "tls_cert"), _path(get("tls_key"), "tls_key")
    if (tls_cert is None) != (tls_key is None):
        missing = "WINMDM_TLS_KEY" if tls_key is None else "WINMDM_TLS_CERT"
        raise ConfigError(missing, "is missing: set WINMDM_TLS_CERT and WINMDM_TLS_KEY together, or neither")
    tenants = tuple(t.lower() for t in _list(get("entra_tenant_ids", "")))
    for tenant in tenants:
        if not _GUID.match(tenant):
            raise ConfigError("WINMDM_ENTRA_TENANT_IDS", f"{tenant!r} is not a tenant id (a GUID)")
    jwks_url = str(get("entra_jwks_url", MICROSOFT_JWKS_URL))
    _check_jwks_url(jwks_url)
    audiences = _list(get("entra_audiences", "")) or (server_url,)
    try:
        poll = PollSchedule.parse(str(get("poll_schedule", "3x5,15x8,480")))
    except ValueError as exc:
        raise ConfigError("WINMDM_POLL_SCHEDULE", str(exc)) from None
    certificate_days = _int(get("certificate_days", 365), "certificate_days", 1, 3650)
    renewal_days = _int(get("renewal_days", 42), "renewal_days", 1, 3650)
    if renewal_days >= certificate_days:
        raise ConfigError("WINMDM_RENEWAL_DAYS", "must be fewer than WINMDM_CERTIFICATE_DAYS")
    log_level = str(get("log_level", "info")).lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("WINMDM_LOG_LEVEL", "must be debug, info, warning or error")
    log_format = str(get("log_format", "text")).strip().lower()
    if log_format not in ("text", "json"):
        raise ConfigError("WINMDM_LOG_FORMAT", "must be text or json")
    organization = str(get("organization", "winmdm")).strip()
    if not organization or len(organization) > 64:
        raise ConfigError("WINMDM_ORGANIZATION", "must be 1 to 64 characters")
    return Config(
        data_dir=data_dir,
        database_url=database_url,
        server_url=server_url,
        server_host=server_host,
        listen_host=listen_host,
        listen_port=listen_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        entra_tenant_ids=tenants,
        entra_jwks_url=jwks_url,
        entra_audiences=tuple(audiences),
        poll_schedule=poll,
        certificate_days=certificate_days,
        renewal_days=renewal_days,
        max_body_bytes=_int(get("max_body_bytes", 1048576), "max_body_bytes", 16 * 1024, 64 * 1024 * 1024),
        organization=organization,
        log_level=log_level,
        trusted_proxies=_networks(get("trusted_proxies", "")),
        client_cert_header=_header_name(str(get("client_cert_header", "X-SSL-Client-Cert"))),
        **(oidc := _oidc(get("oidc_issuer"), get("oidc_client_id"), get("oidc_client_secret"))),
        end_user_auth=_end_user_auth(get("end_user_auth", False), oidc["oidc_issuer"] is not None),
        license_key=str(get("license_key", "")).strip() or None,
        license_public_key_file=_path(get("license_public_key_file"), "license_public_key_file"),
        host_merge_after_days=_int(get("host_merge_after_days", 30), "host_merge_after_days", 0, 3650),
        allowed_appru=_allowed_appru(get("allowed_appru", "")),
        header_timeout=float(_int(get("header_timeout", 10), "header_timeout", 1, 3600)),
        body_timeout=float(_int(get("body_timeout", 30), "body_timeout", 1, 3600)),
        max_connections=_int(get("max_connections", 1000), "max_connections", 10, 1_000_000),
        log_format=log_format,
        metrics_token=_metrics_token(get("metrics_token", "")),
        metrics_listen=_metrics_listen(get("metrics_listen", ""), (listen_host, listen_port)),
        osquery_log_dir=_osquery_log_dir(get("osquery_log_dir", ""), data_dir),
        osquery_log_max_bytes=_int(get("osquery_log_max_mb", 100), "osquery_log_max_mb", 1, 100_000)
        * 1024
        * 1024,
    )


def _osquery_log_dir(value: Any, data_dir: Path) -> Path | None:
    text = str(value).strip()
    if text.lower() == "off":
        return None
    path = Path(text).expanduser().resolve() if text else data_dir / "osquery-logs"
    if path.exists() and not path.is_dir():
        raise ConfigError(
            "WINMDM_OSQUERY_LOG_DIR", f"{path} is a file: name a folder, or off to keep no logs"
        )
    return path


def _metrics_token(value: Any) -> str | None:
    """A bearer token an operator made (e.g. `openssl rand -hex 32`): long enough not to be
    guessed, and only characters a header carries unchanged."""
    token = str(value).strip()
    if not token:
        return None
    if len(token) < 16 or not re.fullmatch(r"[A-Za-z0-9._~+/=-]+", token):
        # The value is a secret: the message never repeats it.
        raise ConfigError(
            "WINMDM_METRICS_TOKEN", "must be at least 16 characters of A-Z a-z 0-9 . _ ~ + / = -"
        )
    return token


def _metrics_listen(value: Any, main: tuple[str, int]) -> tuple[str, int] | None:
    text = str(value).strip()
    if not text:
        return None
    listen = _listen(text, "WINMDM_METRICS_LISTEN")
    everywhere = {"0.0.0.0", "::"}
    if listen[1] == main[1] and (listen[0] == main[0] or everywhere & {listen[0], main[0]}):
        raise ConfigError("WINMDM_METRICS_LISTEN", f"port {listen[1]} is the server's own (WINMDM_LISTEN)")
    return listen


def _allowed_appru(value: Any) -> tuple[str, ...]:
    """Exact https URLs besides Windows' own ms-app:// addresses (docs/configuration.md)."""
    urls = _list(value)
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.fragment:
            raise ConfigError("WINMDM_ALLOWED_APPRU", f"{url!r} must be an exact https:// URL")
    return urls


def _end_user_auth(value: Any, oidc_configured: bool) -> bool:
    """A boolean; on only with an OIDC identity provider to sign the user in with."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        enabled = True
    elif text in ("false", "0", "no", "off", ""):
        enabled = False
    else:
        raise ConfigError("WINMDM_END_USER_AUTH", f"{value!r} must be true or false")
    if enabled and not oidc_configured:
        raise ConfigError(
            "WINMDM_END_USER_AUTH",
            "needs an OIDC identity provider to sign users in with: set WINMDM_OIDC_ISSUER, "
            "WINMDM_OIDC_CLIENT_ID and WINMDM_OIDC_CLIENT_SECRET",
        )
    return enabled


def _oidc(issuer: Any, client_id: Any, secret: Any) -> dict[str, str | None]:
    """All three or none; the issuer is https (plain http only on loopback, for tests)."""
    values = {"oidc_issuer": issuer, "oidc_client_id": client_id, "oidc_client_secret": secret}
    given = {k: str(v).strip() for k, v in values.items() if v not in (None, "")}
    if not given:
        return {k: None for k in values}
    missing = [k for k in values if k not in given]
    if missing:
        raise ConfigError(
            "WINMDM_" + missing[0].upper(),
            "set WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID and "
            "WINMDM_OIDC_CLIENT_SECRET together, or none of them",
        )
    parts = urlsplit(given["oidc_issuer"])
    loopback = parts.hostname is not None and _is_loopback(parts.hostname)
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError("WINMDM_OIDC_ISSUER", f"{given['oidc_issuer']!r} must be an https URL")
    return given


def _networks(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in _list(value):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError("WINMDM_TRUSTED_PROXIES", f"{part!r} is not an IP address or network") from None
    return tuple(networks)


def _header_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value.strip()):
        raise ConfigError("WINMDM_CLIENT_CERT_HEADER", f"{value!r} is not an HTTP header name")
    return value.strip()


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"{path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    section = data.get("winmdm", data)
    if not isinstance(section, dict):
        raise ConfigError("--config", f"{path}: [winmdm] must be a table of settings")
    # With a [winmdm] table, keys outside it would be silently ignored: refuse them instead.
    outside = sorted(set(data) - {"winmdm"}) if section is not data else []
    if outside:
        raise ConfigError("--config", f"{path}: {outside[0]!r} is outside the [winmdm] table")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise ConfigError("--config", f"{path}: unknown setting {unknown[0]!r}")
    return {k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in section.items()}


def _server_url(value: str) -> tuple[str, str, int]:
    parts = urlsplit(value.strip())
    if parts.scheme != "https":
        raise ConfigError(
            "WINMDM_SERVER_URL", f"{value!r} must start with https:// (Windows enrolls only over HTTPS)"
        )
    # Device routes live at the root (Windows probes /EnrollmentServer/Discovery.svc), so no path.
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError("WINMDM_SERVER_URL", f"{value!r} must be a plain https://host[:port] URL")
    try:
        port = parts.port or 443
    except ValueError:
        raise ConfigError("WINMDM_SERVER_URL", f"{value!r} has an invalid port") from None
    return value.strip().rstrip("/"), parts.hostname, port


def _listen(value: str, setting: str = "WINMDM_LISTEN") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(setting, f"{value!r} must be host:port, e.g. 0.0.0.0:443")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigError("WINMDM_ENTRA_JWKS_URL", f"{url!r} must be https (plain http only on loopback)")


def _path(value: Any, key: str) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError("WINMDM_" + key.upper(), f"{path} does not exist or is not a file")
    return path


def _list(value: Any) -> tuple[str, ...]:
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


def _int(value: Any, key: str, low: int, high: int, convert: Callable[[Any], int] = int) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError("WINMDM_" + key.upper(), f"{value!r} is not a whole number")
    try:
        number = convert(value)
    except (TypeError, ValueError):
        raise ConfigError("WINMDM_" + key.upper(), f"{value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigError("WINMDM_" + key.upper(), f"must be between {low} and {high}, got {number}")
    return number

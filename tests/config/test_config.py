"""Settings: defaults, environment and TOML alike, env over file, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from winmdm.config import MICROSOFT_JWKS_URL, SETTINGS, Config, load_config
from winmdm.errors import ConfigError
from winmdm.protocol.provisioning import PollSchedule

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TENANT = "0b9c9a5e-4b2f-4a0e-9d1c-2f3e4a5b6c7d"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(tmp_path: Path, text: str, name: str = "winmdm.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(env: dict[str, str], config_file: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(env, config_file)
    return raised.value


# --- defaults -------------------------------------------------------------------------------------


def test_defaults(cwd: Path) -> None:
    config = load_config({})
    data_dir = (cwd / "winmdm-data").resolve()
    assert config.data_dir == data_dir
    assert config.database_url == f"sqlite:///{data_dir / 'winmdm.db'}"
    assert config.server_url == "https://localhost:8443"
    assert config.server_host == "localhost"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8443)
    assert config.tls_cert is None and config.tls_key is None
    assert config.entra_tenant_ids == ()
    assert config.entra_jwks_url == MICROSOFT_JWKS_URL
    assert config.entra_audiences == ("https://localhost:8443",)
    assert config.poll_schedule == PollSchedule(3, 5, 15, 8, 480)
    assert (config.certificate_days, config.renewal_days) == (365, 42)
    assert config.max_body_bytes == 1024 * 1024
    assert config.organization == "winmdm"
    assert config.log_level == "info"
    assert (config.host_merge_after_days, config.allowed_appru) == (30, ())
    assert (config.header_timeout, config.body_timeout, config.max_connections) == (10.0, 30.0, 1000)


def test_sqlite_database_follows_the_data_dir(tmp_path: Path) -> None:
    config = load_config({"WINMDM_DATA_DIR": str(tmp_path / "data")})
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'winmdm.db'}"


@pytest.mark.parametrize(
    ("server_url", "listen"),
    [
        ("https://localhost", ("127.0.0.1", 443)),
        ("https://127.0.0.1:9443", ("127.0.0.1", 9443)),
        ("https://[::1]:8443", ("127.0.0.1", 8443)),
        ("https://mdm.example.com", ("0.0.0.0", 443)),
        ("https://mdm.example.com:8443/", ("0.0.0.0", 8443)),
        ("https://192.0.2.10:444", ("0.0.0.0", 444)),
    ],
)
def test_listen_is_derived_from_the_server_url(server_url: str, listen: tuple[str, int]) -> None:
    config = load_config({"WINMDM_SERVER_URL": server_url})
    assert (config.listen_host, config.listen_port) == listen
    assert config.server_url == server_url.rstrip("/")


def test_explicit_listen_overrides_the_derived_one() -> None:
    config = load_config({"WINMDM_SERVER_URL": "https://localhost", "WINMDM_LISTEN": "[::]:8443"})
    assert (config.listen_host, config.listen_port) == ("::", 8443)


# --- environment and TOML alike -------------------------------------------------------------------

VALUES = {
    "data_dir": "DATA",
    "database_url": "postgresql://winmdm@db.example.com/winmdm",
    "server_url": "https://mdm.example.com:9443",
    "listen": "10.0.0.5:8443",
    "tls_cert": "CERT",
    "tls_key": "KEY",
    "entra_tenant_ids": f"{TENANT},{TENANT.upper().replace('0B9C', '1111')}",
    "entra_jwks_url": "http://127.0.0.1:8080/keys",
    "entra_audiences": "api://winmdm,4f2e8d1c-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
    "poll_schedule": "2x10,30x4,240",
    "certificate_days": "200",
    "renewal_days": "30",
    "max_body_bytes": "2097152",
    "organization": "Contoso IT",
    "log_level": "DEBUG",
    "log_format": "json",
    "metrics_token": "0123456789abcdef-scrape",
    "metrics_listen": "10.0.0.5:9464",
    "trusted_proxies": "10.0.0.5,10.1.0.0/16",
    "client_cert_header": "X-Client-Cert",
    "oidc_issuer": "https://corp.okta.example",
    "oidc_client_id": "winmdm",
    "oidc_client_secret": "s3cret",
    "end_user_auth": "true",
    "license_key": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
    "host_merge_after_days": "7",
    "header_timeout": "5",
    "body_timeout": "60",
    "max_connections": "300",
    "allowed_appru": "https://tool.corp.example/done,https://tool.corp.example/other?x=1",
    "osquery_log_max_mb": "20",
}


def every_value(tmp_path: Path) -> dict[str, str]:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_text("cert")
    key.write_text("key")
    license_public_key = tmp_path / "license.pem"
    license_public_key.write_text("key")
    values = dict(VALUES, data_dir=str(tmp_path / "data"), tls_cert=str(cert), tls_key=str(key))
    values["license_public_key_file"] = str(license_public_key)
    values["osquery_log_dir"] = str(tmp_path / "agent-logs")
    assert set(values) == {s.key for s in SETTINGS}, "the test must cover every setting"
    return values


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_environment_and_toml_give_the_same_config(tmp_path: Path) -> None:
    values = every_value(tmp_path)
    from_env = load_config({f"WINMDM_{k.upper()}": v for k, v in values.items()})
    toml = "\n".join(f"{k} = {toml_string(v)}" for k, v in values.items())
    from_file = load_config({}, write_toml(tmp_path, toml))
    assert from_env == from_file
    assert from_env.data_dir == (tmp_path / "data").resolve()
    assert from_env.database_url == "postgresql://winmdm@db.example.com/winmdm"
    assert from_env.server_host == "mdm.example.com"
    assert (from_env.listen_host, from_env.listen_port) == ("10.0.0.5", 8443)
    assert from_env.tls_cert == tmp_path / "server.crt"
    assert from_env.entra_tenant_ids == (TENANT, "11119a5e-4b2f-4a0e-9d1c-2f3e4a5b6c7d")
    assert from_env.entra_audiences == ("api://winmdm", "4f2e8d1c-1a2b-4c3d-8e9f-0a1b2c3d4e5f")
    assert from_env.poll_schedule == PollSchedule(2, 10, 30, 4, 240)
    assert (from_env.certificate_days, from_env.renewal_days) == (200, 30)
    assert from_env.max_body_bytes == 2097152
    assert from_env.organization == "Contoso IT"
    assert from_env.log_level == "debug"
    assert [str(n) for n in from_env.trusted_proxies] == ["10.0.0.5/32", "10.1.0.0/16"]
    assert from_env.client_cert_header == "X-Client-Cert"
    assert (from_env.oidc_issuer, from_env.oidc_client_id) == ("https://corp.okta.example", "winmdm")
    assert from_env.end_user_auth is True
    assert from_env.license_key == "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"
    assert from_env.license_public_key_file == tmp_path / "license.pem"
    assert from_env.host_merge_after_days == 7
    assert (from_env.header_timeout, from_env.body_timeout, from_env.max_connections) == (5.0, 60.0, 300)
    assert from_env.allowed_appru == ("https://tool.corp.example/done", "https://tool.corp.example/other?x=1")
    assert from_env.osquery_log_dir == (tmp_path / "agent-logs").resolve()
    assert from_env.osquery_log_max_bytes == 20 * 1024 * 1024


def test_toml_native_types(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        f'entra_tenant_ids = ["{TENANT}"]\n'
        'entra_audiences = ["api://a", "api://b"]\n'
        "certificate_days = 100\nrenewal_days = 10\nmax_body_bytes = 65536\n",
    )
    config = load_config({}, path)
    assert config.entra_tenant_ids == (TENANT,)
    assert config.entra_audiences == ("api://a", "api://b")
    assert (config.certificate_days, config.renewal_days, config.max_body_bytes) == (100, 10, 65536)


def test_winmdm_table_works_like_the_top_level(tmp_path: Path) -> None:
    top = load_config({}, write_toml(tmp_path, 'server_url = "https://mdm.example.com"\n', "top.toml"))
    table = load_config(
        {}, write_toml(tmp_path, '[winmdm]\nserver_url = "https://mdm.example.com"\n', "table.toml")
    )
    assert top == table
    assert table.server_url == "https://mdm.example.com"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, '[winmdm]\nserver_url = "https://file.example.com"\norganization = "From file"\n'
    )
    config = load_config({"WINMDM_SERVER_URL": "https://env.example.com"}, path)
    assert config.server_url == "https://env.example.com"
    assert config.organization == "From file"  # not in the environment: the file's value stays


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'organization = "From file"\n')
    assert load_config({"WINMDM_ORGANIZATION": ""}, path).organization == "From file"
    assert load_config({"WINMDM_ORGANIZATION": "  "}).organization == "winmdm"


def test_unrelated_environment_variables_are_ignored() -> None:
    assert load_config({"WINMDM_NOT_A_SETTING": "x", "PATH": "/bin"}) == load_config({})


# --- the file itself ------------------------------------------------------------------------------


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    error = config_error({}, write_toml(tmp_path, '[winmdm]\nserver_ulr = "https://x.example.com"\n'))
    assert error.setting == "--config"
    assert "unknown setting 'server_ulr'" in error.problem


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    error = config_error({}, write_toml(tmp_path, "colour = 1\n"))
    assert error.setting == "--config" and "unknown setting 'colour'" in error.problem


def test_keys_outside_the_winmdm_table_are_refused(tmp_path: Path) -> None:
    # They would otherwise be silently ignored.
    path = write_toml(tmp_path, 'organization = "lost"\n[winmdm]\nlog_level = "debug"\n')
    error = config_error({}, path)
    assert error.setting == "--config" and "'organization' is outside the [winmdm] table" in error.problem


def test_winmdm_must_be_a_table(tmp_path: Path) -> None:
    error = config_error({}, write_toml(tmp_path, "winmdm = 3\n"))
    assert error.setting == "--config" and "must be a table" in error.problem


def test_missing_config_file(tmp_path: Path) -> None:
    error = config_error({}, tmp_path / "nope.toml")
    assert error.setting == "--config" and "does not exist" in error.problem


def test_invalid_toml(tmp_path: Path) -> None:
    error = config_error({}, write_toml(tmp_path, "server_url = \n"))
    assert error.setting == "--config" and "is not valid TOML" in error.problem


# --- every validation rule -------------------------------------------------------------------------

BAD = [
    ("WINMDM_HOST_MERGE_AFTER_DAYS", "-1", "between 0 and 3650"),
    ("WINMDM_HEADER_TIMEOUT", "0", "between 1 and 3600"),
    ("WINMDM_BODY_TIMEOUT", "soon", "not a whole number"),
    ("WINMDM_MAX_CONNECTIONS", "5", "between 10 and 1000000"),
    ("WINMDM_HOST_MERGE_AFTER_DAYS", "a month", "not a whole number"),
    ("WINMDM_ALLOWED_APPRU", "http://tool.corp.example/done", "exact https:// URL"),
    ("WINMDM_ALLOWED_APPRU", "ms-app://windows.immersivecontrolpanel,https://", "exact https:// URL"),
    ("WINMDM_SERVER_URL", "http://mdm.example.com", "must start with https://"),
    ("WINMDM_SERVER_URL", "mdm.example.com", "must start with https://"),
    ("WINMDM_SERVER_URL", "https://mdm.example.com/mdm", "plain https://host[:port]"),
    ("WINMDM_SERVER_URL", "https://mdm.example.com/?a=b", "plain https://host[:port]"),
    ("WINMDM_SERVER_URL", "https://mdm.example.com#frag", "plain https://host[:port]"),
    ("WINMDM_SERVER_URL", "https://admin@mdm.example.com", "plain https://host[:port]"),
    ("WINMDM_SERVER_URL", "https://", "plain https://host[:port]"),
    ("WINMDM_SERVER_URL", "https://mdm.example.com:99999", "invalid port"),
    ("WINMDM_LISTEN", "8443", "must be host:port"),
    ("WINMDM_LISTEN", ":8443", "must be host:port"),
    ("WINMDM_LISTEN", "0.0.0.0:", "must be host:port"),
    ("WINMDM_LISTEN", "0.0.0.0:http", "must be host:port"),
    ("WINMDM_LISTEN", "0.0.0.0:0", "must be host:port"),
    ("WINMDM_LISTEN", "0.0.0.0:65536", "must be host:port"),
    ("WINMDM_DATABASE_URL", "mysql://root@db/winmdm", "must be a sqlite:/// or postgresql:// URL"),
    ("WINMDM_TLS_CERT", "/nonexistent/server.crt", "does not exist"),
    ("WINMDM_ENTRA_TENANT_IDS", "contoso.onmicrosoft.com", "is not a tenant id (a GUID)"),
    ("WINMDM_ENTRA_TENANT_IDS", f"{TENANT},1234", "'1234' is not a tenant id"),
    ("WINMDM_ENTRA_JWKS_URL", "http://keys.example.com/keys", "must be https (plain http only on loopback)"),
    ("WINMDM_ENTRA_JWKS_URL", "ftp://127.0.0.1/keys", "must be https"),
    ("WINMDM_ENTRA_JWKS_URL", "keys.json", "must be https"),
    ("WINMDM_POLL_SCHEDULE", "3x5,15x8", "expected MINUTESxCOUNT,MINUTESxCOUNT,MINUTES"),
    ("WINMDM_POLL_SCHEDULE", "3x5,15x8,480x1", "expected MINUTESxCOUNT"),
    ("WINMDM_POLL_SCHEDULE", "ax5,15x8,480", "expected MINUTESxCOUNT"),
    ("WINMDM_POLL_SCHEDULE", "3x0,15x8,480", "first_count must be 1 to 1000"),
    ("WINMDM_POLL_SCHEDULE", "3x5,15x8,0", "remaining_interval must be 1 to 10080 minutes"),
    ("WINMDM_CERTIFICATE_DAYS", "a year", "'a year' is not a whole number"),
    ("WINMDM_CERTIFICATE_DAYS", "36.5", "is not a whole number"),
    ("WINMDM_CERTIFICATE_DAYS", "0", "must be between 1 and 3650, got 0"),
    ("WINMDM_CERTIFICATE_DAYS", "3651", "must be between 1 and 3650"),
    ("WINMDM_RENEWAL_DAYS", "-1", "must be between 1 and 3650, got -1"),
    ("WINMDM_RENEWAL_DAYS", "365", "must be fewer than WINMDM_CERTIFICATE_DAYS"),
    ("WINMDM_MAX_BODY_BYTES", "1k", "is not a whole number"),
    ("WINMDM_MAX_BODY_BYTES", "1024", "must be between 16384 and 67108864"),
    ("WINMDM_ORGANIZATION", "x" * 65, "must be 1 to 64 characters"),
    ("WINMDM_LOG_LEVEL", "verbose", "must be debug, info, warning or error"),
    ("WINMDM_TRUSTED_PROXIES", "10.0.0.5,proxy.example", "is not an IP address or network"),
    ("WINMDM_CLIENT_CERT_HEADER", "X Client Cert", "is not an HTTP header name"),
]


@pytest.mark.parametrize(("setting", "value", "problem"), BAD, ids=[f"{s}={v[:30]}" for s, v, _ in BAD])
def test_bad_value_names_the_setting_and_the_problem(setting: str, value: str, problem: str) -> None:
    error = config_error({setting: value})
    assert error.setting == setting
    assert problem in error.problem
    assert error.message == f"{setting}: {error.problem}"
    assert "\n" not in error.message


@pytest.mark.parametrize(("setting", "value", "problem"), BAD, ids=[f"{s}={v[:30]}" for s, v, _ in BAD])
def test_bad_value_in_toml_names_the_same_setting(
    tmp_path: Path, setting: str, value: str, problem: str
) -> None:
    key = setting.removeprefix("WINMDM_").lower()
    error = config_error({}, write_toml(tmp_path, f"[winmdm]\n{key} = {toml_string(value)}\n"))
    assert error.setting == setting
    assert problem in error.problem


@pytest.mark.parametrize(
    ("value", "problem"), [(True, "True is not a whole number"), (36.5, "36.5 is not a whole number")]
)
def test_toml_numbers_must_be_whole(tmp_path: Path, value: object, problem: str) -> None:
    literal = "true" if value is True else str(value)
    error = config_error({}, write_toml(tmp_path, f"certificate_days = {literal}\n"))
    assert error.setting == "WINMDM_CERTIFICATE_DAYS" and problem in error.problem


def test_bad_environment_value_is_reported_even_when_the_file_is_fine(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'server_url = "https://mdm.example.com"\n')
    assert config_error({"WINMDM_SERVER_URL": "http://x"}, path).setting == "WINMDM_SERVER_URL"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/winmdm/winmdm.db",
        "postgresql://winmdm@db.example.com/winmdm",
        "postgresql+psycopg://winmdm:secret@db/winmdm",
        "postgres://winmdm@db/winmdm",
    ],
)
def test_database_urls_accepted(url: str) -> None:
    assert load_config({"WINMDM_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("present", "missing"), [("WINMDM_TLS_CERT", "WINMDM_TLS_KEY"), ("WINMDM_TLS_KEY", "WINMDM_TLS_CERT")]
)
def test_tls_cert_and_key_come_together(tmp_path: Path, present: str, missing: str) -> None:
    pem = tmp_path / "file.pem"
    pem.write_text("pem")
    error = config_error({present: str(pem)})
    assert error.setting == missing
    assert "is missing" in error.problem and "together" in error.problem


def test_tls_key_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    cert.write_text("pem")
    error = config_error({"WINMDM_TLS_CERT": str(cert), "WINMDM_TLS_KEY": str(tmp_path / "gone.key")})
    assert error.setting == "WINMDM_TLS_KEY"
    assert "gone.key does not exist" in error.problem


def test_tls_cert_must_be_a_file(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("pem")
    error = config_error({"WINMDM_TLS_CERT": str(tmp_path), "WINMDM_TLS_KEY": str(key)})
    assert error.setting == "WINMDM_TLS_CERT" and "is not a file" in error.problem


def test_tls_pair_is_used(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_text("pem")
    key.write_text("pem")
    config = load_config({"WINMDM_TLS_CERT": str(cert), "WINMDM_TLS_KEY": str(key)})
    assert (config.tls_cert, config.tls_key) == (cert, key)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/keys",
        "http://localhost/keys",
        "http://[::1]:9000/keys",
        "https://keys.example.com/keys",
    ],
)
def test_jwks_url_http_only_on_loopback(url: str) -> None:
    assert load_config({"WINMDM_ENTRA_JWKS_URL": url}).entra_jwks_url == url


def test_tenant_ids_are_normalised() -> None:
    config = load_config({"WINMDM_ENTRA_TENANT_IDS": f" {TENANT.upper()} , ,{TENANT}"})
    assert config.entra_tenant_ids == (TENANT, TENANT)


def test_renewal_must_be_shorter_than_the_lifetime() -> None:
    error = config_error({"WINMDM_CERTIFICATE_DAYS": "30"})  # default renewal is 42 days
    assert error.setting == "WINMDM_RENEWAL_DAYS"
    config = load_config({"WINMDM_CERTIFICATE_DAYS": "30", "WINMDM_RENEWAL_DAYS": "29"})
    assert (config.certificate_days, config.renewal_days) == (30, 29)


def test_log_level_is_case_insensitive() -> None:
    assert load_config({"WINMDM_LOG_LEVEL": "Warning"}).log_level == "warning"


def test_config_is_immutable() -> None:
    config = load_config({})
    assert isinstance(config, Config)
    with pytest.raises(AttributeError):
        config.server_url = "https://elsewhere"  # type: ignore[misc]


# --- documentation --------------------------------------------------------------------------------


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `WINMDM_")]
    documented = {row.split("|")[1].strip().strip("`"): row.split("|")[2].strip().strip("`") for row in rows}
    assert documented == {s.env: s.key for s in SETTINGS}
    for setting in SETTINGS:
        assert f"`{setting.env}`" in text and f"`{setting.key}`" in text


def test_oidc_settings_go_together() -> None:
    with pytest.raises(ConfigError) as error:
        load_config({"WINMDM_OIDC_ISSUER": "https://idp.example.com", "WINMDM_OIDC_CLIENT_SECRET": "x"})
    assert error.value.setting == "WINMDM_OIDC_CLIENT_ID"
    assert "together" in error.value.message
    loopback = load_config(
        {
            "WINMDM_OIDC_ISSUER": "http://127.0.0.1:9999",
            "WINMDM_OIDC_CLIENT_ID": "a",
            "WINMDM_OIDC_CLIENT_SECRET": "b",
        }
    )
    assert loopback.oidc_issuer == "http://127.0.0.1:9999"
    assert load_config({}).oidc_issuer is None
    with pytest.raises(ConfigError, match="must be an https URL") as plain:
        load_config(
            {
                "WINMDM_OIDC_ISSUER": "http://idp.example.com",
                "WINMDM_OIDC_CLIENT_ID": "a",
                "WINMDM_OIDC_CLIENT_SECRET": "b",
            }
        )
    assert plain.value.setting == "WINMDM_OIDC_ISSUER"


OIDC_ENV = {
    "WINMDM_OIDC_ISSUER": "https://idp.example.com",
    "WINMDM_OIDC_CLIENT_ID": "a",
    "WINMDM_OIDC_CLIENT_SECRET": "b",
}


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("On", True), ("1", True), ("false", False)])
def test_end_user_auth_is_a_boolean(value: str, expected: bool) -> None:
    assert load_config({**OIDC_ENV, "WINMDM_END_USER_AUTH": value}).end_user_auth is expected
    assert load_config({}).end_user_auth is False


def test_end_user_auth_in_toml_takes_a_native_boolean(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "end_user_auth = true\n")
    assert load_config(OIDC_ENV, path).end_user_auth is True


def test_end_user_auth_without_an_oidc_idp_is_refused_naming_the_oidc_settings() -> None:
    error = config_error({"WINMDM_END_USER_AUTH": "true"})
    assert error.setting == "WINMDM_END_USER_AUTH"
    for name in ("WINMDM_OIDC_ISSUER", "WINMDM_OIDC_CLIENT_ID", "WINMDM_OIDC_CLIENT_SECRET"):
        assert name in error.message
    assert load_config({"WINMDM_END_USER_AUTH": "false"}).end_user_auth is False


def test_end_user_auth_must_be_true_or_false() -> None:
    error = config_error({**OIDC_ENV, "WINMDM_END_USER_AUTH": "maybe"})
    assert error.setting == "WINMDM_END_USER_AUTH"
    assert "true or false" in error.message

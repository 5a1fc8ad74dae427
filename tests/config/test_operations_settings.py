"""The operations settings: log format, the metrics token and the metrics listener."""

from __future__ import annotations

import pytest

from winmdm.config import load_config
from winmdm.errors import ConfigError


def test_defaults_keep_text_logs_and_metrics_on_the_main_port() -> None:
    config = load_config({})
    assert (config.log_format, config.metrics_token, config.metrics_listen) == ("text", None, None)


def test_the_settings_are_read() -> None:
    config = load_config(
        {
            "WINMDM_LOG_FORMAT": "JSON",
            "WINMDM_METRICS_TOKEN": "0123456789abcdef0123",
            "WINMDM_METRICS_LISTEN": "[::1]:9464",
        }
    )
    assert config.log_format == "json"
    assert config.metrics_token == "0123456789abcdef0123"
    assert config.metrics_listen == ("::1", 9464)
    assert "0123456789abcdef0123" not in repr(config)


@pytest.mark.parametrize(
    ("env", "setting", "problem"),
    [
        ({"WINMDM_LOG_FORMAT": "xml"}, "WINMDM_LOG_FORMAT", "must be text or json"),
        ({"WINMDM_METRICS_TOKEN": "short"}, "WINMDM_METRICS_TOKEN", "at least 16 characters"),
        ({"WINMDM_METRICS_TOKEN": "has spaces in the middle"}, "WINMDM_METRICS_TOKEN", "at least 16"),
        ({"WINMDM_METRICS_LISTEN": "9464"}, "WINMDM_METRICS_LISTEN", "must be host:port"),
        (
            {"WINMDM_METRICS_LISTEN": "0.0.0.0:8443", "WINMDM_LISTEN": "127.0.0.1:8443"},
            "WINMDM_METRICS_LISTEN",
            "is the server's own",
        ),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], setting: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(env)
    assert raised.value.setting == setting
    assert problem in raised.value.message
    assert "has spaces" not in raised.value.message  # a token is never repeated


def test_osquery_logs_go_under_the_data_dir_unless_set_or_off(tmp_path) -> None:
    default = load_config({"WINMDM_DATA_DIR": str(tmp_path)})
    assert default.osquery_log_dir == tmp_path.resolve() / "osquery-logs"
    assert default.osquery_log_max_bytes == 100 * 1024 * 1024
    assert load_config({"WINMDM_OSQUERY_LOG_DIR": " OFF "}).osquery_log_dir is None


@pytest.mark.parametrize(
    ("value", "setting", "problem"),
    [
        ("file", "WINMDM_OSQUERY_LOG_DIR", "is a file: name a folder, or off"),
        ("0", "WINMDM_OSQUERY_LOG_MAX_MB", "must be between 1 and 100000"),
    ],
)
def test_osquery_log_settings_refuse_what_cannot_work(tmp_path, value, setting, problem) -> None:
    (tmp_path / "file").write_text("x")
    env = {setting: str(tmp_path / value) if value == "file" else value}
    with pytest.raises(ConfigError) as error:
        load_config(env)
    assert error.value.setting == setting and problem in error.value.message

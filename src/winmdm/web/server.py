"""Runs the ASGI app on uvicorn with TLS, requesting (not requiring) a client certificate.

The management endpoint authenticates devices by the certificate winmdm issued (protocol.md
decision 4), so the TLS layer asks for one signed by the device CA; enrollment needs none.
"""

from __future__ import annotations

import ssl

import uvicorn

from winmdm.errors import ConfigError
from winmdm.log_format import uvicorn_log_config
from winmdm.runtime import Runtime
from winmdm.web.app import create_app
from winmdm.web.connections import guarded_protocol, raise_open_file_limit
from winmdm.web.metrics_routes import MetricsListener


def uvicorn_config(runtime: Runtime) -> uvicorn.Config:
    cfg = runtime.config
    return uvicorn.Config(
        create_app(runtime),
        host=cfg.listen_host,
        port=cfg.listen_port,
        ssl_certfile=str(runtime.tls.cert),
        ssl_keyfile=str(runtime.tls.key),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_ca_certs=str(runtime.ca_path),
        log_level=cfg.log_level,
        # uvicorn's loggers in WINMDM_LOG_FORMAT, its access line without secrets (log_format.py).
        log_config=uvicorn_log_config(cfg.log_format),
        # Header timeout and connection limit (web/connections.py); the ASGI tls extension.
        http=guarded_protocol(
            header_timeout=cfg.header_timeout, max_connections=raise_open_file_limit(cfg.max_connections)
        ),
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
    )


def serve(runtime: Runtime) -> None:
    """Serve until stopped; /metrics on a listener of its own when WINMDM_METRICS_LISTEN says."""
    config = uvicorn_config(runtime)
    listener = None
    if runtime.config.metrics_listen is not None:
        host, port = runtime.config.metrics_listen
        try:
            listener = MetricsListener(host, port, runtime.metrics, runtime.config.metrics_token)
        except OSError as exc:
            problem = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise ConfigError("WINMDM_METRICS_LISTEN", problem) from None
        listener.start()
    try:
        uvicorn.Server(config).run()
    finally:
        if listener is not None:
            listener.stop()

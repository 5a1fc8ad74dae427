"""Runs the ASGI app on uvicorn with TLS, requesting (not requiring) a client certificate.

The management endpoint authenticates devices by the certificate winmdm issued (protocol.md
decision 4), so the TLS layer asks for one signed by the device CA; enrollment needs none.
"""

from __future__ import annotations

import ssl

import uvicorn

from winmdm.runtime import Runtime
from winmdm.web.app import create_app
from winmdm.web.connections import guarded_protocol, raise_open_file_limit


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
    uvicorn.Server(uvicorn_config(runtime)).run()

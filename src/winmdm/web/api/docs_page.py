"""/api/v1/docs: the API's browsable documentation, served whole by winmdm.

Swagger UI 5 (it renders OpenAPI 3.1, which FastAPI writes) comes from the fastapi-swagger
package's files, served here with a long cache: no CDN, so the page works offline and on a
closed network, under a Content-Security-Policy that allows nothing but this server. The page
and its start script are ours (no inline script: the policy needs none).
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response

from winmdm.errors import NotFound

DOCS_PATH = "/docs"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI sets style attributes itself, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{base}/docs/favicon-32x32.png">
<link rel="stylesheet" href="{base}/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{base}/openapi.json"></div>
<script src="{base}/docs/swagger-ui-bundle.js"></script>
<script src="{base}/docs/start.js"></script>
</body>
</html>
"""

_START = """window.addEventListener("load", function () {
  var holder = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: holder.dataset.openapi,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    displayRequestDuration: true,
    filter: true,
    persistAuthorization: false,
  });
});
"""


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("fastapi_swagger.resources").joinpath(name).read_bytes()


def install(api: FastAPI, prefix: str) -> None:
    """Serve the page and its files on `api` (mounted at `prefix`), outside the OpenAPI document."""
    page = _PAGE.format(title=f"{api.title}: documentation", base=prefix)

    @api.get(DOCS_PATH, include_in_schema=False)
    def docs_page() -> Response:
        return HTMLResponse(page, headers=_SECURITY)

    @api.get(DOCS_PATH + "/start.js", include_in_schema=False)
    def docs_start() -> Response:
        return Response(_START, media_type="text/javascript; charset=utf-8", headers=_SECURITY)

    @api.get(DOCS_PATH + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound(
                f"there is no file {name[:80]!r} of the documentation page; see {prefix}{DOCS_PATH}"
            )
        headers = {**_SECURITY, "Cache-Control": "public, max-age=86400"}
        return Response(_asset(name), media_type=ASSETS[name], headers=headers)

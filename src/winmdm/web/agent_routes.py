"""The agent MSI download Windows fetches for an MsiInstallJob (protocol.md §9).

The link itself is the credential: `/agent/<sha256>.<expires>.<hmac>.msi`, signed with the data
dir's key and valid for 24 hours (services.agent). No client certificate is asked for: Windows'
download stack does not present the enrollment certificate.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from winmdm.errors import AuthorizationFailed, NotFound
from winmdm.runtime import Runtime
from winmdm.services.agent import DOWNLOAD_PREFIX, DOWNLOAD_SUFFIX

MSI_TYPE = "application/x-msi"


async def download(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        package = await run_in_threadpool(runtime.agent.download, request.path_params["token"])
    except AuthorizationFailed as exc:
        return PlainTextResponse(exc.message, status_code=403)
    except NotFound as exc:
        return PlainTextResponse(exc.message, status_code=404)
    name = f"agent-{package.version}.msi"
    return Response(
        package.content,
        media_type=MSI_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


def routes() -> list[Route]:
    return [Route(f"{DOWNLOAD_PREFIX}{{token}}{DOWNLOAD_SUFFIX}", download, methods=["GET"])]

"""Server configuration: MDM settings, license, and what admins paste into Entra (docs/api.md "Config")."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from winmdm.domain.admin import Role
from winmdm.errors import InvalidInput
from winmdm.runtime import Runtime
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import json_object
from winmdm.web.api.views import plain

api = Endpoints("config")

_CONFIG_PATCH = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "mdm": {
                            "type": "object",
                            "properties": {
                                key: {"type": "boolean"}
                                for key in (
                                    "windows_enabled_and_configured",
                                    "windows_migration_enabled",
                                    "enable_turn_on_windows_mdm_manually",
                                    "end_user_authentication",
                                )
                            },
                            "additionalProperties": False,
                        }
                    },
                    "additionalProperties": False,
                }
            }
        },
    }
}


def config_view(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings.get()
    lic = runtime.settings.license()  # as it stands now: the same rule PATCH keeps
    cfg, ep = runtime.config, runtime.endpoints
    return {
        "mdm": plain(settings),
        "license": {
            "tier": lic.tier,
            "organization": lic.organization,
            "expires_at": plain(lic.expires_at),
            "warning": lic.warning,
        },
        "server": {
            "server_url": cfg.server_url,
            "discovery_url": ep.discovery,
            "terms_of_use_url": ep.terms_of_use,
            "sign_in_url": ep.authentication,
            "sign_in_configured": runtime.oidc is not None,
            "oidc_issuer": cfg.oidc_issuer,
            "entra_tenant_ids": list(cfg.entra_tenant_ids),
            "poll_schedule": str(cfg.poll_schedule),
        },
    }


@api.get("/config", Role.OBSERVER)
def get_config(request: Request) -> dict[str, Any]:
    return config_view(runtime_of(request))


@api.patch("/config", Role.ADMIN, openapi_extra=_CONFIG_PATCH)
async def patch_config(request: Request, principal: SignedIn) -> dict[str, Any]:
    body = await json_object(request)
    unknown = [key for key in body if key != "mdm"]
    if unknown:
        raise InvalidInput(
            f'{unknown[0]} is not a setting this endpoint changes; send {{"mdm": {{...}}}}', field=unknown[0]
        )
    changes = body.get("mdm", {})
    if not isinstance(changes, dict):
        raise InvalidInput(
            'mdm must be an object of settings, e.g. {"windows_migration_enabled": false}', field="mdm"
        )
    runtime = runtime_of(request)
    await run_in_threadpool(runtime.settings.update, changes, actor=actor(principal))
    return await run_in_threadpool(config_view, runtime)

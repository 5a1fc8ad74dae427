"""The admin REST API under /api/v1 (docs/api.md): FastAPI over the same services as the CLI,
GitOps and the UI, so one rule gives one error text everywhere."""

from winmdm.web.api.app import create_api

__all__ = ["create_api"]

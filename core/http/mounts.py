"""Plugin route handlers mounted under ``/api/tenants/{tenant_id}/<plugin>``."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Router
from litestar.di import Provide

from core.http.auth import (
    feature_guard,
    provide_actor,
    provide_tenant,
)
from core.runtime.contributions import contributions_of

__all__ = ["build_plugin_routers"]

log = structlog.get_logger("tenantry.mounts")


def build_plugin_routers(pm: Any) -> list[Router]:
    """Mount each plugin's route handlers under ``/api/tenants/{tenant_id}/<plugin>``.

    Each mount carries a guard that answers 404 for tenants without the plugin,
    and the ``tenant`` and ``actor`` dependencies.
    """
    routers = []
    for name, handlers in contributions_of(pm).route_handlers.items():
        routers.append(
            Router(
                path=f"/api/tenants/{{tenant_id:str}}/{name}",
                route_handlers=list(handlers),
                guards=[feature_guard(name)],
                dependencies={
                    "tenant": Provide(provide_tenant),
                    "actor": Provide(provide_actor),
                },
                tags=[name],
            )
        )
    return routers

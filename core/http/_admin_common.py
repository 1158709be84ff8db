"""What the admin API's controllers share: answer Structs, tenant-id checks, audit records."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
import structlog
from litestar.params import Parameter as QueryParameter

from core.config.model import (
    TENANT_ID_PATTERN,
    ConfigIssue,
)
from core.errors import (
    NotFound,
)
from core.http.admin_tokens import AdminActor
from core.runtime.audit import (
    AuditEntry,
)
from core.runtime.control import StorageClaim
from core.runtime.placement import TableCount

__all__ = [
    "OUTSIDE_SCOPE",
    "AuditPage",
    "ClaimsAnswer",
    "MoveAnswer",
    "MoveRequest",
    "TenantFilter",
    "UploadFileName",
    "issues_text",
    "record_admin_action",
    "running_text",
    "unknown_tenant",
    "well_formed",
    "with_versions",
]

log = structlog.get_logger("tenantry.admin")


class ClaimsAnswer(msgspec.Struct):
    """Body of ``GET /admin/claims`` and ``DELETE /admin/claims/{tenant_id}``.

    Attributes:
        claims: the claims asked for (listing).
        released: claims deleted now (release).
        kept: claims the tenant's running config still uses (release).
    """

    claims: list[StorageClaim] = []
    released: list[StorageClaim] = []
    kept: list[StorageClaim] = []


class AuditPage(msgspec.Struct):
    """Body of ``GET /admin/audit``: entries newest first.

    Attributes:
        entries: at most ``limit`` entries.
        next_before: pass as ``before`` for the next, older page; None on the last page.
    """

    entries: list[AuditEntry]
    next_before: int | None = None


class MoveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /admin/tenants/{tenant_id}/move``.

    Attributes:
        to: the PostgreSQL server to move to: ``default`` or a name of
            ``TENANTRY_DATABASE_URL_<NAME>``.
        drop_old: drop the schema on the old server once the tenant serves
            from the new one (default: keep it).
    """

    to: str
    drop_old: bool = False


class MoveAnswer(msgspec.Struct):
    """Body of a done move.

    Attributes:
        tenant: the tenant's state on the new server (as ``GET /admin/tenants``).
        source: the server it was on.
        target: the server it is on now.
        tables: rows of every table on both servers (equal).
        dropped_old: whether the old copy was dropped.
    """

    tenant: dict[str, Any]
    source: str
    target: str
    tables: list[TableCount]
    dropped_old: bool


OUTSIDE_SCOPE = "outside the token's scope"
"""The audit reason of a scoped token's attempt on a tenant it may not manage."""


def unknown_tenant(tenant_id: str) -> NotFound:
    # The same answer for a tenant that does not exist and for one outside a
    # scoped token's scope: the token cannot even learn that it exists.
    return NotFound("admin.unknown_tenant", f"unknown tenant {tenant_id!r}")


def well_formed(tenant_id: str) -> bool:
    # A path that cannot be a tenant id names no tenant: answered 404 without
    # a database round trip or an audit entry (PostgreSQL text cannot even
    # hold some of what a client may send, NUL for one).
    return re.match(TENANT_ID_PATTERN, tenant_id) is not None


TenantFilter = Annotated[str | None, QueryParameter(pattern=TENANT_ID_PATTERN)]
"""A ``tenant`` query parameter: a tenant id (``core.config.model.TENANT_ID_PATTERN``)."""


def running_text(runtime: Any, tenant_id: str) -> str:
    tenant = runtime.registry.get(tenant_id)
    return tenant.spec.text if tenant is not None and tenant.spec is not None else ""


async def record_admin_action(
    runtime: Any,
    actor: AdminActor,
    action: str,
    tenant_id: str,
    outcome: str,
    reason: str = "",
    *,
    before: str = "",
    after: str = "",
) -> None:
    """Record one admin action (:meth:`core.runtime.audit.AuditLog.record`)."""
    await runtime.audit.record(
        actor=actor.name,
        action=action,
        tenant_id=tenant_id,
        outcome=outcome,
        reason=reason,
        before=before,
        after=after,
    )


def issues_text(issues: list[ConfigIssue]) -> str:
    return "; ".join(str(issue) for issue in issues)


UploadFileName = Annotated[
    str | None, QueryParameter(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.ya?ml$")
]
"""A ``file`` query parameter: the uploaded file's own name (``filin.yaml``), no folder."""


async def with_versions(runtime: Any, described: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``described`` tenants with their stored ``version``, ``changed_by`` and ``changed_at``."""
    heads = await runtime.store.heads([d["id"] for d in described])
    return [
        {
            **d,
            "version": head.version if (head := heads.get(d["id"])) else None,
            "changed_by": head.changed_by if head else None,
            "changed_at": head.changed_at.isoformat() if head else None,
        }
        for d in described
    ]

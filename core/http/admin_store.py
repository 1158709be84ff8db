"""The admin API of the tenant store and the control schema: versions, rollback, moves, claims, audit."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Response, delete, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from litestar.params import Parameter as QueryParameter
from litestar.status_codes import HTTP_200_OK

from core.config.model import (
    ConfigError,
)
from core.errors import (
    Forbidden,
    NotFound,
    Unprocessable,
)
from core.http._admin_common import (
    AuditPage,
    ClaimsAnswer,
    MoveAnswer,
    MoveRequest,
    TenantFilter,
    issues_text,
    record_admin_action,
    unknown_tenant,
    well_formed,
    with_versions,
)
from core.http.admin_tokens import AdminActor
from core.http.auth import (
    AdminActorDep,
    provide_admin_actor,
    require_admin_token,
)
from core.runtime.audit import (
    admin_action,
    mask_secrets,
    tenant_file_diff,
)
from core.runtime.control import claims_of
from core.runtime.placement import MoveError
from core.runtime.registry import TenantStartError
from core.runtime.runtime import RuntimeDep

__all__ = ["AdminStoreController"]

log = structlog.get_logger("tenantry.admin")


class AdminStoreController(Controller):
    """Admin API of what the control schema keeps: tenant versions, rollback, moves, claims, audit.

    Same authority as :class:`core.http.admin.AdminController`: the ops token
    or a scoped admin token, which sees and manages only its tenants; every
    change and every refused attempt is recorded in the audit log.
    """

    path = "/admin"
    guards = [require_admin_token]
    dependencies = {"actor": Provide(provide_admin_actor)}
    tags = ["ops"]

    @get("/tenants/{tenant_id:str}/history", summary="Every stored version of a tenant file")
    async def tenant_history(
        self, runtime: RuntimeDep, tenant_id: FromPath[str], actor: AdminActorDep
    ) -> dict[str, Any]:
        """The tenant's versions in the store, newest first (:mod:`core.runtime.store`).

        Returns:
            ``{"id", "versions": [{"version", "action", "checksum", "changed_by", "changed_at"}]}``.

        Raises:
            NotFound: never stored, or outside the token's scope.
        """
        history = await self._history(runtime, actor, tenant_id)
        return {
            "id": tenant_id,
            "versions": [
                {
                    "version": h.version,
                    "action": h.action,
                    "checksum": h.checksum,
                    "changed_by": h.changed_by,
                    "changed_at": h.changed_at.isoformat(),
                }
                for h in history
            ],
        }

    @get(
        "/tenants/{tenant_id:str}/versions/{version:int}",
        summary="One stored version of a tenant file, secrets masked",
    )
    async def tenant_version(
        self,
        runtime: RuntimeDep,
        tenant_id: FromPath[str],
        version: FromPath[int],
        actor: AdminActorDep,
    ) -> dict[str, Any]:
        """Version ``version`` of the tenant's file, inline secrets masked
        (:func:`core.runtime.audit.mask_secrets`), with its diff against the version before.

        Raises:
            NotFound: no such version, or a tenant outside the token's scope.
        """
        await self._history(runtime, actor, tenant_id)
        stored = await runtime.store.version(tenant_id, version)
        if stored is None:
            raise NotFound("admin.no_version", f"tenant {tenant_id!r} has no version {version}")
        previous = await runtime.store.version(tenant_id, version - 1) if version > 1 else None
        key = runtime.settings.resolved_secret_key().encode()
        text = mask_secrets(stored.text, key) or "" if stored.text else ""
        before = (mask_secrets(previous.text, key) or "") if previous and previous.text else ""
        return {
            "id": tenant_id,
            "version": version,
            "action": stored.head.action,
            "changed_by": stored.head.changed_by,
            "changed_at": stored.head.changed_at.isoformat(),
            "text": text,
            "diff": tenant_file_diff(tenant_id, before, text),
        }

    @post(
        "/tenants/{tenant_id:str}/rollback/{version:int}",
        summary="Make an earlier version of a tenant file current again",
        status_code=HTTP_200_OK,
    )
    async def rollback_tenant(
        self,
        runtime: RuntimeDep,
        tenant_id: FromPath[str],
        version: FromPath[int],
        actor: AdminActorDep,
    ) -> Response[Any]:
        """Store version ``version``'s text as the next version and start it, on every runtime.

        The old text is validated again like any change (an environment
        variable it needs may be gone): a refusal changes nothing.

        Returns:
            200 with the tenant's state and its new stored ``version`` (the
            current one when it already had that text); 404 no such version (or outside the
            token's scope, or a removal); 422 with errors when it is refused
            or could not start (the running version is kept).
        """
        await self._history(runtime, actor, tenant_id)
        stored = await runtime.store.version(tenant_id, version)
        if stored is None or not stored.text:
            raise NotFound("admin.no_version", f"tenant {tenant_id!r} has no version {version}")
        with admin_action(actor.name, "tenant.rollback") as recording:
            try:
                tenant = await runtime.registry.apply_text(
                    stored.text,
                    # The folder's file follows, as for an upload: it is the
                    # tenant's source here, and its removal is named after it.
                    write_to=runtime.registry.tenants_dir / f"{tenant_id}.yaml",
                    env_allow=None if actor.is_ops else (),
                    env_secrets_only=not actor.is_ops,
                    changed_by=actor.name,
                    action="rollback",
                )
            except ConfigError as exc:
                await record_admin_action(
                    runtime,
                    actor,
                    "tenant.rollback",
                    tenant_id,
                    "refused",
                    issues_text(exc.issues),
                )
                raise Unprocessable(
                    "admin.invalid_tenant_file",
                    f"version {version} is refused; the running config is kept",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except TenantStartError as exc:
                if not recording.recorded:
                    await record_admin_action(
                        runtime, actor, "tenant.rollback", tenant_id, "failed", str(exc)
                    )
                raise Unprocessable(
                    "admin.tenant_start_failed",
                    f"version {version} could not start; the running config is kept",
                    errors=[str(exc)],
                ) from None
        if not recording.recorded:
            await record_admin_action(
                runtime, actor, "tenant.rollback", tenant_id, "ok", "unchanged"
            )
        [described] = await with_versions(runtime, [tenant.describe()])
        return Response(described)

    @post(
        "/tenants/{tenant_id:str}/move",
        summary="Move a tenant's schema to another PostgreSQL server",
        status_code=HTTP_200_OK,
    )
    async def move_tenant(
        self,
        runtime: RuntimeDep,
        tenant_id: FromPath[str],
        data: JSONBody[MoveRequest],
        actor: AdminActorDep,
    ) -> MoveAnswer:
        """Copy the tenant's schema to server ``to``, check it, and serve it from there.

        See :meth:`core.runtime.registry.TenantRegistry.move`: the tenant
        serves nothing during the copy, and serves from the old server again
        when the copy fails. Only the ops token may move a tenant (it moves
        data between servers).

        Returns:
            200 with the row counts; 403 for a scoped token; 404 no such
            running tenant; 422 an unknown or the current server, a refused
            file, or a failed copy (the tenant is back on the old server).
        """
        if not actor.is_ops:
            reason = "only the ops token may move tenants"
            await record_admin_action(runtime, actor, "tenant.move", tenant_id, "refused", reason)
            raise Forbidden("admin.ops_only", reason)
        tenant = runtime.registry.get(tenant_id) if well_formed(tenant_id) else None
        if tenant is None:
            raise unknown_tenant(tenant_id)
        source = tenant.config.storage.database
        with admin_action(actor.name, "tenant.move"):
            try:
                counts = await runtime.registry.move(
                    tenant_id, data.to, drop_old=data.drop_old, changed_by=actor.name
                )
            except KeyError:
                raise unknown_tenant(tenant_id) from None
            except ConfigError as exc:
                await record_admin_action(
                    runtime, actor, "tenant.move", tenant_id, "refused", issues_text(exc.issues)
                )
                raise Unprocessable(
                    "admin.move_refused",
                    f"tenant {tenant_id!r} cannot move to {data.to!r}; nothing changed",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except (MoveError, TenantStartError) as exc:
                await record_admin_action(
                    runtime, actor, "tenant.move", tenant_id, "failed", str(exc)
                )
                raise Unprocessable(
                    "admin.move_failed",
                    f"tenant {tenant_id!r} could not move to {data.to!r}",
                    errors=[str(exc)],
                ) from None
        reason = f"{source} -> {data.to}, {sum(c.target for c in counts)} rows"
        await record_admin_action(runtime, actor, "tenant.move", tenant_id, "ok", reason)
        return MoveAnswer(
            tenant=runtime.registry.get(tenant_id).describe(),
            source=source,
            target=data.to,
            tables=counts,
            dropped_old=data.drop_old,
        )

    async def _history(self, runtime: RuntimeDep, actor: AdminActor, tenant_id: str) -> list[Any]:
        if not well_formed(tenant_id) or not actor.may_manage(tenant_id):
            raise unknown_tenant(tenant_id)
        history = await runtime.store.history(tenant_id)
        if not history:
            raise unknown_tenant(tenant_id)
        return history

    @get("/claims", summary="Storage claims: which tenant id holds which schema, prefix and bot")
    async def list_claims(
        self, runtime: RuntimeDep, actor: AdminActorDep, tenant: TenantFilter = None
    ) -> ClaimsAnswer:
        """Return the claims of ``tenant`` (or of every tenant) in the token's scope."""
        claims = await runtime.claims.held_by([tenant] if tenant is not None else None)
        return ClaimsAnswer(claims=[c for c in claims if actor.may_manage(c.tenant_id)])

    @delete(
        "/claims/{tenant_id:str}",
        summary="Release a tenant id's storage claims (ops token only)",
        status_code=HTTP_200_OK,
    )
    async def release_claims(
        self, runtime: RuntimeDep, tenant_id: FromPath[str], actor: AdminActorDep
    ) -> ClaimsAnswer:
        """Release the schema, Redis prefix and bot claims of ``tenant_id``.

        Claims that the tenant's config in this runtime still uses (it is
        running or failed here) are kept; for a removed tenant every claim
        goes, and its storage can be given to another tenant id. Its data is
        not deleted. Release a removed tenant's claims only once no runtime
        serves it any more.

        Raises:
            Forbidden: a scoped token (only the ops token may release claims).
            NotFound: ``tenant_id`` holds no claims.
        """
        if not actor.is_ops:
            reason = "only the ops token may release claims"
            await record_admin_action(runtime, actor, "claim.release", tenant_id, "refused", reason)
            raise Forbidden("admin.ops_only", reason)
        no_claims = NotFound("admin.no_claims", f"tenant {tenant_id!r} holds no claims")
        if not well_formed(tenant_id):
            raise no_claims
        loaded = runtime.registry.get(tenant_id)
        in_use = claims_of(loaded.config) if loaded is not None else []
        released, kept = await runtime.claims.release(tenant_id, in_use)
        if not released and not kept:
            await record_admin_action(
                runtime, actor, "claim.release", tenant_id, "refused", "no claims"
            )
            raise no_claims
        described = ", ".join(f"{c.resource} {c.value!r}" for c in released) or "nothing"
        await record_admin_action(
            runtime, actor, "claim.release", tenant_id, "ok", f"released {described}"
        )
        return ClaimsAnswer(released=released, kept=kept)

    @get("/audit", summary="The audit log, newest first")
    async def read_audit(
        self,
        runtime: RuntimeDep,
        actor: AdminActorDep,
        tenant: TenantFilter = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        before: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1)] = None,
    ) -> AuditPage:
        """Return audit entries, newest first; a scoped token sees only its tenants' entries.

        Args:
            actor: the token.
            tenant: only this tenant's entries.
            limit: at most this many entries (1-500, default 50).
            before: only entries older than this entry id (``next_before`` of
                the previous page).
        """
        entries = await runtime.audit.entries(actor, tenant=tenant, limit=limit, before=before)
        next_before = entries[-1].id if len(entries) == limit else None
        return AuditPage(entries=entries, next_before=next_before)

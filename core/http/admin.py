"""The admin API of tenants: list, add or replace, reload, remove (versions, claims, audit: :mod:`core.http.admin_store`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from core.config.model import (
    MAX_TENANT_FILE_BYTES,
    ConfigError,
    ConfigIssue,
    parse_tenant_text,
)
from core.errors import (
    Forbidden,
    NotFound,
    Unprocessable,
)
from core.http._admin_common import (
    OUTSIDE_SCOPE,
    AuditPage,
    ClaimsAnswer,
    MoveAnswer,
    MoveRequest,
    UploadFileName,
    issues_text,
    record_admin_action,
    running_text,
    unknown_tenant,
    well_formed,
    with_versions,
)
from core.http.auth import (
    AdminActorDep,
    provide_admin_actor,
    require_admin_token,
)
from core.runtime.audit import (
    admin_action,
    declared_tenant_id,
)
from core.runtime.registry import TenantStartError
from core.runtime.runtime import RuntimeDep
from core.runtime.tenant import TenantState

__all__ = ["AdminController", "AuditPage", "ClaimsAnswer", "MoveAnswer", "MoveRequest"]

log = structlog.get_logger("tenantry.admin")


class AdminController(Controller):
    """Admin API: list, add, reload and remove tenants on a running system.

    Every route needs ``Authorization: Bearer <token>``: the ops token
    (``TENANTRY_ADMIN_TOKEN``), or a token scoped to some tenants
    (:mod:`core.http.admin_tokens`), which sees and manages only those. Every
    change and every refused attempt of one is recorded in the audit log.
    """

    path = "/admin"
    guards = [require_admin_token]
    dependencies = {"actor": Provide(provide_admin_actor)}
    tags = ["ops"]

    @get("/tenants", summary="List tenants with their states")
    async def list_tenants(self, runtime: RuntimeDep, actor: AdminActorDep) -> dict[str, Any]:
        """Return the state of every tenant in the token's scope and its rejected files.

        Each tenant's entry also has its stored ``version``, ``changed_by`` and
        ``changed_at`` (ISO 8601, UTC) from :mod:`core.runtime.store`.
        """
        registry = runtime.registry
        described = [t.describe() for t in registry.tenants.values() if actor.may_manage(t.id)]
        return {
            "tenants": await with_versions(runtime, described),
            "rejected": {
                f: [str(i) for i in issues]
                for f, issues in registry.rejected.items()
                if actor.may_manage(Path(f).stem)
            },
        }

    @get("/tenants/{tenant_id:str}", summary="One tenant's state")
    async def get_tenant(
        self, runtime: RuntimeDep, tenant_id: FromPath[str], actor: AdminActorDep
    ) -> dict[str, Any]:
        """Return one tenant's state, with its stored ``version``, ``changed_by`` and ``changed_at``.

        Raises:
            NotFound: unknown tenant, or one outside the token's scope.
        """
        tenant = runtime.registry.get(tenant_id)
        if tenant is None or not actor.may_manage(tenant_id):
            raise unknown_tenant(tenant_id)
        [described] = await with_versions(runtime, [tenant.describe()])
        return described

    @post(
        "/tenants",
        summary="Add or replace a tenant from a YAML body",
        description="The body is a tenant file. It is validated, written to the tenants folder as <id>.yaml and started.",
        status_code=HTTP_201_CREATED,
        # Litestar refuses a larger Content-Length before reading, and stops
        # reading a chunked body once it passes the limit.
        request_max_body_size=MAX_TENANT_FILE_BYTES,
    )
    async def put_tenant(
        self,
        runtime: RuntimeDep,
        request: Request[Any, Any, Any],
        actor: AdminActorDep,
        file: UploadFileName = None,
    ) -> Response[Any]:
        """Validate the YAML body, write ``<id>.yaml`` and start (or swap in) the tenant.

        A scoped token may upload only tenant ids in its scope (403 otherwise,
        whether or not the tenant exists), and its file reads only the
        tenant's own ``<ID>_*`` environment variables, not the runtime's
        shared allow list. No token may take a schema, Redis prefix or bot
        claimed by another tenant id (:mod:`core.runtime.control`).

        The body is parsed and validated in a worker thread, within the limits
        of :class:`core.config.model.YamlDocument` (size, alias expansion, nesting).

        Args:
            request: the request; its body is the tenant file.
            actor: the token.
            file: the uploaded file's name (``filin.yaml``, as ``tenantry tenants
                apply`` sends it): errors name it, and its id must match it, as
                in a tenants folder. Default ``<admin upload>``, no name check.

        Returns:
            201 with the tenant's state, its stored ``version`` and ``outcome``:
            ``created``, ``updated`` or ``unchanged`` (the stored version already
            had this text); 422 with ``errors`` (file:line: field: reason)
            when invalid or its storage is claimed (nothing changed) or when it
            could not start (a replaced tenant keeps its old config); 400 when
            the body is not UTF-8; 403 for an id outside the token's scope; 413
            when it is over :data:`core.config.model.MAX_TENANT_FILE_BYTES`.
        """
        # A scoped token's file may not read the runtime's shared variables,
        # and reads its own only where the value is never shown.
        load_options = dict(runtime.registry.load_options)
        if not actor.is_ops:
            load_options["env_allow"] = ()
            load_options["env_secrets_only"] = True
        try:
            body = await request.body()
        except RequestEntityTooLarge:
            raise RequestEntityTooLarge(
                detail=f"a tenant file is at most {MAX_TENANT_FILE_BYTES} bytes"
            ) from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientException(detail="the body must be UTF-8 YAML") from None
        try:
            try:
                config, _ = await asyncio.to_thread(
                    parse_tenant_text,
                    text,
                    file or "<admin upload>",
                    **load_options,
                )
            except ConfigError as exc:
                log.warning(
                    "tenant_file_rejected",
                    file=file or "<admin upload>",
                    errors=[str(i) for i in exc.issues],
                )
                raise
            except Exception as exc:  # a bug in validation must not become a 500
                issue = f"could not be loaded: {type(exc).__name__}: {exc}"
                log.error("tenant_upload_failed", error=issue, exc_info=True)
                raise ConfigError([ConfigIssue("<admin upload>", None, "", issue)]) from None
        except ConfigError as exc:
            declared = await asyncio.to_thread(declared_tenant_id, text)
            await record_admin_action(
                runtime,
                actor,
                "tenant.change" if runtime.registry.get(declared) is not None else "tenant.add",
                declared,
                "refused",
                issues_text(exc.issues),
                before=running_text(runtime, declared),
                after=text,
            )
            raise Unprocessable(
                "admin.invalid_tenant_file",
                "invalid tenant file",
                errors=[str(i) for i in exc.issues],
            ) from None
        before = running_text(runtime, config.id)
        action = "tenant.change" if runtime.registry.get(config.id) is not None else "tenant.add"
        if not actor.may_manage(config.id):
            await record_admin_action(
                runtime,
                actor,
                action,
                config.id,
                "refused",
                OUTSIDE_SCOPE,
                before=before,
                after=text,
            )
            raise Forbidden(
                "admin.outside_scope",
                f"token {actor.name!r} may not manage tenant {config.id!r} "
                f"(its tenants: {actor.scope_text()})",
            )
        target = runtime.registry.tenants_dir / f"{config.id}.yaml"
        stored_before = (await runtime.store.heads([config.id])).get(config.id)
        with admin_action(actor.name, action) as recording:
            try:
                tenant = await runtime.registry.apply_text(
                    text,
                    write_to=target,
                    env_allow=None if actor.is_ops else (),
                    env_secrets_only=not actor.is_ops,
                    changed_by=actor.name,
                )
            except ConfigError as exc:
                await record_admin_action(
                    runtime,
                    actor,
                    action,
                    config.id,
                    "refused",
                    issues_text(exc.issues),
                    before=before,
                    after=text,
                )
                raise Unprocessable(
                    "admin.invalid_tenant_file",
                    "invalid tenant file",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except TenantStartError as exc:
                if not recording.recorded:
                    await record_admin_action(
                        runtime,
                        actor,
                        action,
                        config.id,
                        "failed",
                        str(exc),
                        before=before,
                        after=text,
                    )
                raise Unprocessable(
                    "admin.tenant_start_failed", "the tenant could not start", errors=[str(exc)]
                ) from None
        if not recording.recorded:
            await record_admin_action(runtime, actor, action, config.id, "ok", "unchanged")
        [described] = await with_versions(runtime, [tenant.describe()])
        if stored_before is None or stored_before.deleted:
            outcome = "created"
        elif described["version"] == stored_before.version:
            outcome = "unchanged"
        else:
            outcome = "updated"
        return Response({**described, "outcome": outcome}, status_code=HTTP_201_CREATED)

    @post(
        "/tenants/{tenant_id:str}/reload", summary="Re-read a tenant file", status_code=HTTP_200_OK
    )
    async def reload_tenant(
        self, runtime: RuntimeDep, tenant_id: FromPath[str], actor: AdminActorDep
    ) -> Response[Any]:
        """Re-read ``<id>.yaml`` and swap the tenant if it changed.

        Returns:
            200 with the state; 404 no such file, or a tenant outside the
            token's scope; 422 with errors (old config keeps running).
        """
        registry = runtime.registry
        missing = NotFound("admin.no_tenant_file", f"no tenant file for {tenant_id!r}")
        if not well_formed(tenant_id):
            raise missing
        if not actor.may_manage(tenant_id):
            await record_admin_action(
                runtime, actor, "tenant.reload", tenant_id, "refused", OUTSIDE_SCOPE
            )
            raise missing
        before = running_text(runtime, tenant_id)
        with admin_action(actor.name, "tenant.reload") as recording:
            try:
                tenant = await registry.reload(tenant_id)
            except KeyError:
                reason = "no tenant file"
                await record_admin_action(
                    runtime, actor, "tenant.reload", tenant_id, "refused", reason
                )
                raise missing from None
            except ConfigError as exc:
                try:
                    after = await asyncio.to_thread(
                        (registry.tenants_dir / f"{tenant_id}.yaml").read_text, encoding="utf-8"
                    )
                except (OSError, UnicodeDecodeError):
                    after = ""
                await record_admin_action(
                    runtime,
                    actor,
                    "tenant.reload",
                    tenant_id,
                    "refused",
                    issues_text(exc.issues),
                    before=before,
                    after=after,
                )
                raise Unprocessable(
                    "admin.invalid_tenant_file",
                    "invalid tenant file; the running config is kept",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except TenantStartError as exc:
                if not recording.recorded:
                    await record_admin_action(
                        runtime, actor, "tenant.reload", tenant_id, "failed", str(exc)
                    )
                raise Unprocessable(
                    "admin.tenant_start_failed",
                    "the new config could not start; the running config is kept",
                    errors=[str(exc)],
                ) from None
        if not recording.recorded:
            await record_admin_action(runtime, actor, "tenant.reload", tenant_id, "ok", "unchanged")
        return Response(tenant.describe())

    @delete(
        "/tenants/{tenant_id:str}",
        summary="Stop a tenant and delete its file (data is kept)",
        status_code=200,
    )
    async def remove_tenant(
        self, runtime: RuntimeDep, tenant_id: FromPath[str], actor: AdminActorDep
    ) -> dict[str, Any]:
        """Stop the tenant's bot, delete its file; its schema and Redis keys stay, and so
        do its storage claims (``DELETE /admin/claims/{tenant_id}`` releases them).

        Raises:
            NotFound: unknown tenant, or one outside the token's scope.
        """
        if not well_formed(tenant_id):
            raise unknown_tenant(tenant_id)
        if not actor.may_manage(tenant_id):
            await record_admin_action(
                runtime, actor, "tenant.remove", tenant_id, "refused", OUTSIDE_SCOPE
            )
            raise unknown_tenant(tenant_id)
        before = running_text(runtime, tenant_id)
        with admin_action(actor.name, "tenant.remove") as recording:
            try:
                await runtime.registry.remove(tenant_id, changed_by=actor.name)
            except KeyError:
                reason = "unknown tenant"
                await record_admin_action(
                    runtime, actor, "tenant.remove", tenant_id, "refused", reason
                )
                raise unknown_tenant(tenant_id) from None
        if not recording.recorded:
            await record_admin_action(
                runtime, actor, "tenant.remove", tenant_id, "ok", before=before
            )
        return {"id": tenant_id, "state": TenantState.STOPPED}

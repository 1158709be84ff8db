"""The admin API: tenants, storage claims and the audit log, under ops or scoped tokens."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath, JSONBody
from litestar.params import Parameter as QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from core.config.model import (
    MAX_TENANT_FILE_BYTES,
    TENANT_ID_PATTERN,
    ConfigError,
    ConfigIssue,
    parse_tenant_text,
)
from core.errors import (
    Forbidden,
    NotFound,
    Unprocessable,
)
from core.http.admin_tokens import AdminActor
from core.http.auth import (
    AdminActorDep,
    provide_admin_actor,
    require_admin_token,
)
from core.runtime.audit import (
    AuditEntry,
    admin_action,
    declared_tenant_id,
    mask_secrets,
    tenant_file_diff,
)
from core.runtime.control import StorageClaim, claims_of
from core.runtime.placement import MoveError, TableCount
from core.runtime.registry import TenantStartError
from core.runtime.runtime import RuntimeDep
from core.runtime.tenant import TenantState

__all__ = ["AdminController", "AuditPage", "ClaimsAnswer", "MoveAnswer", "MoveRequest"]

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


def _unknown_tenant(tenant_id: str) -> NotFound:
    # The same answer for a tenant that does not exist and for one outside a
    # scoped token's scope: the token cannot even learn that it exists.
    return NotFound("admin.unknown_tenant", f"unknown tenant {tenant_id!r}")


def _well_formed(tenant_id: str) -> bool:
    # A path that cannot be a tenant id names no tenant: answered 404 without
    # a database round trip or an audit entry (PostgreSQL text cannot even
    # hold some of what a client may send, NUL for one).
    return re.match(TENANT_ID_PATTERN, tenant_id) is not None


TenantFilter = Annotated[str | None, QueryParameter(pattern=TENANT_ID_PATTERN)]
"""A ``tenant`` query parameter: a tenant id (``core.config.model.TENANT_ID_PATTERN``)."""


def _running_text(runtime: Any, tenant_id: str) -> str:
    tenant = runtime.registry.get(tenant_id)
    return tenant.spec.text if tenant is not None and tenant.spec is not None else ""


async def _audit(
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


def _issues_text(issues: list[ConfigIssue]) -> str:
    return "; ".join(str(issue) for issue in issues)


UploadFileName = Annotated[
    str | None, QueryParameter(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.ya?ml$")
]
"""A ``file`` query parameter: the uploaded file's own name (``filin.yaml``), no folder."""


async def _with_versions(runtime: Any, described: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


class AdminController(Controller):
    """Admin API: list, add, reload and remove tenants on a running system; claims; audit log.

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
            "tenants": await _with_versions(runtime, described),
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
            raise _unknown_tenant(tenant_id)
        [described] = await _with_versions(runtime, [tenant.describe()])
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
        # A scoped token's file may not read the runtime's shared variables.
        load_options = dict(runtime.registry.load_options)
        if not actor.is_ops:
            load_options["env_allow"] = ()
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
            await _audit(
                runtime,
                actor,
                "tenant.change" if runtime.registry.get(declared) is not None else "tenant.add",
                declared,
                "refused",
                _issues_text(exc.issues),
                before=_running_text(runtime, declared),
                after=text,
            )
            raise Unprocessable(
                "admin.invalid_tenant_file",
                "invalid tenant file",
                errors=[str(i) for i in exc.issues],
            ) from None
        before = _running_text(runtime, config.id)
        action = "tenant.change" if runtime.registry.get(config.id) is not None else "tenant.add"
        if not actor.may_manage(config.id):
            await _audit(
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
                    changed_by=actor.name,
                )
            except ConfigError as exc:
                await _audit(
                    runtime,
                    actor,
                    action,
                    config.id,
                    "refused",
                    _issues_text(exc.issues),
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
                    await _audit(
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
            await _audit(runtime, actor, action, config.id, "ok", "unchanged")
        [described] = await _with_versions(runtime, [tenant.describe()])
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
        if not _well_formed(tenant_id):
            raise missing
        if not actor.may_manage(tenant_id):
            await _audit(runtime, actor, "tenant.reload", tenant_id, "refused", OUTSIDE_SCOPE)
            raise missing
        before = _running_text(runtime, tenant_id)
        with admin_action(actor.name, "tenant.reload") as recording:
            try:
                tenant = await registry.reload(tenant_id)
            except KeyError:
                reason = "no tenant file"
                await _audit(runtime, actor, "tenant.reload", tenant_id, "refused", reason)
                raise missing from None
            except ConfigError as exc:
                try:
                    after = await asyncio.to_thread(
                        (registry.tenants_dir / f"{tenant_id}.yaml").read_text, encoding="utf-8"
                    )
                except (OSError, UnicodeDecodeError):
                    after = ""
                await _audit(
                    runtime,
                    actor,
                    "tenant.reload",
                    tenant_id,
                    "refused",
                    _issues_text(exc.issues),
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
                    await _audit(runtime, actor, "tenant.reload", tenant_id, "failed", str(exc))
                raise Unprocessable(
                    "admin.tenant_start_failed",
                    "the new config could not start; the running config is kept",
                    errors=[str(exc)],
                ) from None
        if not recording.recorded:
            await _audit(runtime, actor, "tenant.reload", tenant_id, "ok", "unchanged")
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
        if not _well_formed(tenant_id):
            raise _unknown_tenant(tenant_id)
        if not actor.may_manage(tenant_id):
            await _audit(runtime, actor, "tenant.remove", tenant_id, "refused", OUTSIDE_SCOPE)
            raise _unknown_tenant(tenant_id)
        before = _running_text(runtime, tenant_id)
        with admin_action(actor.name, "tenant.remove") as recording:
            try:
                await runtime.registry.remove(tenant_id, changed_by=actor.name)
            except KeyError:
                reason = "unknown tenant"
                await _audit(runtime, actor, "tenant.remove", tenant_id, "refused", reason)
                raise _unknown_tenant(tenant_id) from None
        if not recording.recorded:
            await _audit(runtime, actor, "tenant.remove", tenant_id, "ok", before=before)
        return {"id": tenant_id, "state": TenantState.STOPPED}

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
                    env_allow=None if actor.is_ops else (),
                    changed_by=actor.name,
                    action="rollback",
                )
            except ConfigError as exc:
                await _audit(
                    runtime,
                    actor,
                    "tenant.rollback",
                    tenant_id,
                    "refused",
                    _issues_text(exc.issues),
                )
                raise Unprocessable(
                    "admin.invalid_tenant_file",
                    f"version {version} is refused; the running config is kept",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except TenantStartError as exc:
                if not recording.recorded:
                    await _audit(runtime, actor, "tenant.rollback", tenant_id, "failed", str(exc))
                raise Unprocessable(
                    "admin.tenant_start_failed",
                    f"version {version} could not start; the running config is kept",
                    errors=[str(exc)],
                ) from None
        if not recording.recorded:
            await _audit(runtime, actor, "tenant.rollback", tenant_id, "ok", "unchanged")
        [described] = await _with_versions(runtime, [tenant.describe()])
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
            await _audit(runtime, actor, "tenant.move", tenant_id, "refused", reason)
            raise Forbidden("admin.ops_only", reason)
        tenant = runtime.registry.get(tenant_id) if _well_formed(tenant_id) else None
        if tenant is None:
            raise _unknown_tenant(tenant_id)
        source = tenant.config.storage.database
        with admin_action(actor.name, "tenant.move"):
            try:
                counts = await runtime.registry.move(
                    tenant_id, data.to, drop_old=data.drop_old, changed_by=actor.name
                )
            except KeyError:
                raise _unknown_tenant(tenant_id) from None
            except ConfigError as exc:
                await _audit(
                    runtime, actor, "tenant.move", tenant_id, "refused", _issues_text(exc.issues)
                )
                raise Unprocessable(
                    "admin.move_refused",
                    f"tenant {tenant_id!r} cannot move to {data.to!r}; nothing changed",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except (MoveError, TenantStartError) as exc:
                await _audit(runtime, actor, "tenant.move", tenant_id, "failed", str(exc))
                raise Unprocessable(
                    "admin.move_failed",
                    f"tenant {tenant_id!r} could not move to {data.to!r}",
                    errors=[str(exc)],
                ) from None
        reason = f"{source} -> {data.to}, {sum(c.target for c in counts)} rows"
        await _audit(runtime, actor, "tenant.move", tenant_id, "ok", reason)
        return MoveAnswer(
            tenant=runtime.registry.get(tenant_id).describe(),
            source=source,
            target=data.to,
            tables=counts,
            dropped_old=data.drop_old,
        )

    async def _history(self, runtime: RuntimeDep, actor: AdminActor, tenant_id: str) -> list[Any]:
        if not _well_formed(tenant_id) or not actor.may_manage(tenant_id):
            raise _unknown_tenant(tenant_id)
        history = await runtime.store.history(tenant_id)
        if not history:
            raise _unknown_tenant(tenant_id)
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
            await _audit(runtime, actor, "claim.release", tenant_id, "refused", reason)
            raise Forbidden("admin.ops_only", reason)
        no_claims = NotFound("admin.no_claims", f"tenant {tenant_id!r} holds no claims")
        if not _well_formed(tenant_id):
            raise no_claims
        loaded = runtime.registry.get(tenant_id)
        in_use = claims_of(loaded.config) if loaded is not None else []
        released, kept = await runtime.claims.release(tenant_id, in_use)
        if not released and not kept:
            await _audit(runtime, actor, "claim.release", tenant_id, "refused", "no claims")
            raise no_claims
        described = ", ".join(f"{c.resource} {c.value!r}" for c in released) or "nothing"
        await _audit(runtime, actor, "claim.release", tenant_id, "ok", f"released {described}")
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

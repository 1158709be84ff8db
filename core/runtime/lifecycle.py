"""A tenant's lifecycle: its state and the why of it, kept by the registry's entry for the tenant."""

from __future__ import annotations

import time

from core.runtime.redaction import redact

__all__ = ["Lifecycle", "TenantState"]


class TenantState:
    """Names of the lifecycle states shown in ``/health`` and ``GET /admin/tenants``."""

    LOADING = "loading"
    MIGRATING = "migrating"
    RUNNING = "running"
    RETRYING = "retrying"  # serving, but Bot API registration keeps failing
    FAILED = "failed"
    STOPPED = "stopped"


SERVING_STATES = frozenset({TenantState.RUNNING, TenantState.RETRYING})
"""States in which a tenant takes updates and requests."""


class Lifecycle:
    """The lifecycle of one tenant object: written by its owner, read by everyone.

    The registry (:class:`core.runtime.registry.TenantRegistry`) creates one
    per tenant it builds and moves it through loading -> migrating ->
    running | failed -> stopped; the bot registrar it starts
    (:class:`core.updates.registration.Registrar`) moves a running tenant to
    retrying and back while the Bot API refuses or cannot be reached. The
    tenant only reads it (:attr:`core.runtime.tenant.Tenant.state`).

    Attributes:
        state: one of :class:`TenantState`.
        started_at: ``time.monotonic()`` when it started running, or None.
    """

    __slots__ = ("_detail", "started_at", "state")

    def __init__(self) -> None:
        self.state = TenantState.LOADING
        self._detail = ""
        self.started_at: float | None = None

    @property
    def detail(self) -> str:
        """The explanation of :attr:`state`, without known secrets or Bot API tokens.

        Redacted when read, not when set: error texts quote what failed (a
        Bot API URL with the token, a DSN), and a secret registered later is
        hidden too.
        """
        return redact(self._detail)

    @property
    def serving(self) -> bool:
        """True while ``running`` or ``retrying``."""
        return self.state in SERVING_STATES

    def move(self, state: str, detail: str | None = None) -> None:
        """Enter ``state`` (a :class:`TenantState`), with ``detail`` (None keeps the current one).

        Entering ``running`` from anything but ``retrying`` sets :attr:`started_at`.
        """
        if state == TenantState.RUNNING and self.state != TenantState.RETRYING:
            self.started_at = time.monotonic()
        self.state = state
        if detail is not None:
            self._detail = detail

    def explain(self, detail: str) -> None:
        """Change only the explanation (a failed reload of a tenant that keeps serving)."""
        self._detail = detail

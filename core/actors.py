"""Who is acting: roles plugins declare, grants they make, and the resolved :class:`Actor`.

Plugins declare the roles they use with ``register_roles`` (the core:
``admin``, ``customer``, ``system``; orders adds ``partner`` with the scope
kind ``store``) and grant them per tenant and Telegram user with
``grant_roles``. The core resolves the actor once per bot update (an outer
middleware puts it in handler data as ``actor``) and once per HTTP request
(the auth guards leave it for ``actor: ActorDep``), the way datasette's
``actor_from_request`` resolves one actor per request.

An API key of the tenant YAML is an actor by itself: a plain key is an
unscoped ``admin``, a key with ``role``/``scope``/``read_only`` is exactly
what it says (``core.config.model.ApiKey``).

Bot handlers for a role sit on a sub-router with :class:`HasRole`::

    staff = Router(name="shifts.staff")
    staff.message.filter(HasRole("staff", "manager"))

:class:`HasRole` subclasses aiogram's ``Filter`` and is built on first use
(module ``__getattr__``): the config phase (``tenantry check``) imports this
module for :class:`Role` and must not pay for aiogram.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from core.runtime.tenant import Tenant

__all__ = [
    "ADMIN",
    "CUSTOMER",
    "ROLE_NAME_PATTERN",
    "SYSTEM",
    "SYSTEM_ACTOR",
    "Actor",
    "Grant",
    "HasRole",  # noqa: F822  (built on first access: module __getattr__)
    "Role",
    "merge_grants",
    "resolve_actor",
]

ADMIN = "admin"
"""Everything in the tenant: ``bot.admins`` in the bot, plain API keys over HTTP."""
CUSTOMER = "customer"
"""Every Telegram user of the tenant's bot (and WebApp)."""
SYSTEM = "system"
"""The runtime itself: jobs such as the orders expiry."""

ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
"""Role names and scope kinds: lowercase ASCII, 1-32 characters."""

_PRECEDENCE_LAST = (CUSTOMER, SYSTEM)


class Role(msgspec.Struct, frozen=True):
    """A role a plugin uses (``register_roles``).

    Attributes:
        name: ``partner``, ``staff``, ``manager`` (:data:`ROLE_NAME_PATTERN`).
        description: one line for docs and ``tenantry plugins``.
        scopes: the scope kinds a grant or an API key of this role may carry
            (``("store",)``): a key ``{role: partner, scope: {store: [bakery]}}``
            is valid only because ``partner`` declares ``store``.
    """

    name: str
    description: str
    scopes: tuple[str, ...] = ()


class Grant(msgspec.Struct, frozen=True):
    """A role held, possibly limited to some values of some scope kinds.

    Attributes:
        role: the role's name.
        scope: scope kind -> the values allowed (``{"store": frozenset({"bakery"})}``);
            a kind that is absent is unrestricted.
    """

    role: str
    scope: dict[str, frozenset[str]] = {}


class Actor(msgspec.Struct, frozen=True):
    """Who acts in one update or request, with every role they hold.

    Attributes:
        via: ``api_key``, ``webapp``, ``bot`` or ``system``.
        grants: the grants, in precedence order (``admin`` first, then the
            plugins' roles, ``customer`` and ``system`` last); one per role.
        user_id: the Telegram user id (``webapp`` and ``bot``), else None.
        user: the Telegram user's fields (``first_name``, ``username``,
            ``language_code``...), empty for API keys.
        key_name: the API key's ``name`` in the tenant YAML (``""`` when it has
            none), None when not an API key; for history and audit.
        read_only: a read-only API key: refused on every non-GET/HEAD request
            (403 ``auth.read_only``, checked by :mod:`core.http.auth`).
    """

    via: str
    grants: tuple[Grant, ...]
    user_id: int | None = None
    user: dict[str, Any] = {}
    key_name: str | None = None
    read_only: bool = False

    @property
    def roles(self) -> frozenset[str]:
        """The names of the roles held."""
        return frozenset(grant.role for grant in self.grants)

    def has_role(self, *roles: str) -> bool:
        """True when the actor holds at least one of ``roles`` (whatever its scope)."""
        return any(grant.role in roles for grant in self.grants)

    def _grant(self, role: str) -> Grant | None:
        for grant in self.grants:
            if grant.role == role:
                return grant
        return None

    def allows(self, role: str, kind: str, value: str) -> bool:
        """True when the actor holds ``role`` and its scope admits ``value`` of ``kind``.

        ``allows("partner", "store", "bakery")``: a partner of the bakery, or a
        partner unrestricted in stores.
        """
        grant = self._grant(role)
        if grant is None:
            return False
        allowed = grant.scope.get(kind)
        return allowed is None or value in allowed

    def scope_of(self, role: str, kind: str) -> frozenset[str] | None:
        """The values of ``kind`` the actor's ``role`` is limited to.

        Returns:
            None when unrestricted; an empty set when the actor does not hold
            ``role`` at all.
        """
        grant = self._grant(role)
        if grant is None:
            return frozenset()
        return grant.scope.get(kind)

    def role_for(self, allowed: Iterable[str]) -> str | None:
        """The first role of the actor (in precedence order) that is in ``allowed``, or None."""
        wanted = set(allowed)
        for grant in self.grants:
            if grant.role in wanted:
                return grant.role
        return None


SYSTEM_ACTOR = Actor(via="system", grants=(Grant(SYSTEM),))
"""The runtime acting on its own (jobs): role ``system``, no user."""


def _precedence(grant: Grant) -> int:
    if grant.role == ADMIN:
        return 0
    if grant.role in _PRECEDENCE_LAST:
        return 2 + _PRECEDENCE_LAST.index(grant.role)
    return 1


def merge_grants(grants: Iterable[Grant]) -> tuple[Grant, ...]:
    """One grant per role, in precedence order (admin first, customer and system last).

    Two grants of one role widen each other: a scope kind restricted in both
    allows the union of their values, a kind unrestricted in either stays
    unrestricted. Otherwise the order of first appearance is kept.
    """
    merged: dict[str, Grant] = {}
    for grant in grants:
        held = merged.get(grant.role)
        if held is None:
            merged[grant.role] = grant
            continue
        scope = {
            kind: held.scope[kind] | grant.scope[kind]
            for kind in held.scope.keys() & grant.scope.keys()
        }
        merged[grant.role] = Grant(grant.role, scope)
    return tuple(sorted(merged.values(), key=_precedence))


def scope_of_values(scope: Mapping[str, Iterable[str] | str]) -> dict[str, frozenset[str]]:
    """A :class:`Grant` scope from YAML-shaped values: ``{"store": "bakery"}`` or ``{"store": [...]}``."""
    return {
        kind: frozenset([values] if isinstance(values, str) else values)
        for kind, values in scope.items()
    }


async def resolve_actor(
    tenant: Tenant, user_id: int, *, via: str, user: dict[str, Any] | None = None
) -> Actor:
    """The actor of Telegram user ``user_id`` in ``tenant``, from every ``grant_roles`` answer.

    Called by the core once per bot update (``via="bot"``) and once per WebApp
    request (``via="webapp"``). Each enabled plugin's ``grant_roles`` may
    answer grants, an awaitable of grants, or None; all are merged
    (:func:`merge_grants`). The core grants ``admin`` to ``bot.admins`` and
    ``customer`` to everyone, without I/O.

    Args:
        tenant: the tenant.
        user_id: the Telegram user id.
        via: ``bot`` or ``webapp``.
        user: the user's fields (``first_name``, ``username``, ``language_code``).

    Returns:
        The :class:`Actor`.
    """
    answers: list[Iterable[Grant]] = []
    # pluggy's caller of the tenant's enabled plugins (shared by tenants with the same
    # plugins); it drops None answers and passes each implementation the arguments it names.
    for answer in tenant.hook.grant_roles(tenant=tenant, user_id=user_id):
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            answers.append(answer)
    if len(answers) == 1 and type(answers[0]) is tuple and len(answers[0]) == 1:
        grants: tuple[Grant, ...] = answers[0]  # one grant: nothing to merge or order
    else:
        grants = merge_grants(grant for answer in answers for grant in answer)
    return Actor(via=via, grants=grants, user_id=user_id, user=user or {})


def _build_has_role() -> type:
    """Define :class:`HasRole` on aiogram's ``Filter`` (imported here, on first use)."""
    from aiogram.filters import Filter

    class HasRole(Filter):
        """aiogram filter: the update's actor holds one of ``roles`` (any scope).

        Put it on a sub-router of role-only handlers::

            admin = Router(name="booking.admin")
            admin.message.filter(HasRole("admin"))

        It reads the ``actor`` the core's outer middleware put in handler data;
        without one (no user in the update) it does not match.
        ``~HasRole("admin")`` matches everyone else.

        Args:
            *roles: role names; at least one.

        Raises:
            ValueError: no role given.
        """

        __slots__ = ("roles",)

        def __init__(self, *roles: str) -> None:
            if not roles:
                raise ValueError("HasRole needs at least one role name")
            self.roles = roles

        async def __call__(self, event: Any, actor: Actor | None = None) -> bool:
            return actor is not None and actor.has_role(*self.roles)

        def __str__(self) -> str:
            return self._signature_to_string(*self.roles)

    HasRole.__module__ = __name__
    HasRole.__qualname__ = "HasRole"
    return HasRole


def __getattr__(name: str) -> Any:
    """Build :class:`HasRole` on first access (PEP 562), so importing this module needs no aiogram.

    Raises:
        AttributeError: any other unknown name.
    """
    if name == "HasRole":
        value = _build_has_role()
        globals()["HasRole"] = value
        return value
    raise AttributeError(f"module 'core.actors' has no attribute {name!r}")

"""Status machines: one validated, YAML-overridable state machine per entity.

A plugin declares each entity whose status it keeps with a
:class:`StatusEntity` (table, column, default machine). The tenant's
``statuses.<entity>`` block replaces the default machine. The core then

* validates the machine (unknown states, unreachable states, bad renames),
* checks every transition in one place (:meth:`StatusMachine.check`),
* keeps ``CHECK (<column> IN (...))`` on the table in step with the states and
  rewrites renamed states in existing rows, in one transaction
  (:func:`sync_status_constraints`).

YAML syntax (``docs/statuses.md``)::

    statuses:
      orders:
        initial: pending
        transitions:
          pending:
            - {to: preparing, roles: [partner, admin]}
            - {to: cancelled, roles: [customer, admin]}
          ready:
            - {to: delivering, roles: [partner], when: {type: delivery}}
            - completed            # shorthand: any role, no condition
        renamed: {confirmed: preparing, new: pending}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import asyncpg
import msgspec

__all__ = [
    "StatusEntity",
    "StatusMachine",
    "StatusMachineSpec",
    "Transition",
    "TransitionError",
    "sync_status_constraints",
]

_STATE = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Transition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One allowed move.

    Attributes:
        to: target state.
        roles: roles that may take it (``customer``, ``partner``, ``admin``,
            ``staff``, ``system``...). Empty: any role.
        when: conditions on the entity, field -> required value (or list of
            allowed values), e.g. ``{type: delivery}``. Empty: always.
    """

    to: _STATE
    roles: list[str] = []
    when: dict[str, Any] = {}


class StatusMachineSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A status machine as written in YAML or declared by a plugin.

    Attributes:
        initial: state of a new entity.
        transitions: source state -> moves out of it (a bare string is a move
            any role may take).
        states: every state; optional, derived from ``initial`` and
            ``transitions`` when omitted. States with no way out are final.
        renamed: old state -> new state, applied to existing rows on start.
    """

    initial: _STATE
    transitions: dict[_STATE, list[_STATE | Transition]]
    states: list[_STATE] | None = None
    renamed: dict[_STATE, _STATE] = {}


class StatusEntity(msgspec.Struct, frozen=True):
    """An entity with a status, declared by a plugin.

    Attributes:
        name: the key under ``statuses:`` in YAML (``booking``, ``orders``).
        table: table in the tenant schema that holds the status.
        column: status column of ``table``.
        default: the machine used when the tenant file does not override it.
        rename_columns: other ``(table, column)`` pairs holding states of this
            entity (history tables) that renames must rewrite too.
    """

    name: str
    table: str
    default: StatusMachineSpec
    column: str = "status"
    rename_columns: tuple[tuple[str, str], ...] = ()


class TransitionError(Exception):
    """A status change the machine does not allow.

    Attributes:
        current: the entity's state.
        target: the state asked for.
        allowed: states this role may move to from ``current``.
        reason: plain-words explanation.
        unknown_target: True when ``target`` is not a state of the machine at
            all (HTTP answers 400 instead of 409).
    """

    def __init__(
        self,
        current: str,
        target: str,
        allowed: list[str],
        reason: str,
        *,
        unknown_target: bool = False,
    ):
        self.current = current
        self.target = target
        self.allowed = allowed
        self.reason = reason
        self.unknown_target = unknown_target
        super().__init__(reason)


class StatusMachine:
    """A validated machine for one entity of one tenant.

    Attributes:
        entity: the declaring StatusEntity.
        initial: initial state.
        states: every state, in declaration order.
        transitions: source -> list of Transition.
        renamed: old -> new state names.
    """

    def __init__(self, entity: StatusEntity, spec: StatusMachineSpec):
        self.entity = entity
        self.initial = spec.initial
        self.transitions: dict[str, list[Transition]] = {
            source: [Transition(to=m) if isinstance(m, str) else m for m in moves]
            for source, moves in spec.transitions.items()
        }
        derived = [spec.initial]
        for source, moves in self.transitions.items():
            derived += [source, *(m.to for m in moves)]
        self.states: list[str] = list(
            dict.fromkeys(spec.states if spec.states is not None else derived)
        )
        self.renamed = dict(spec.renamed)

    def problems(self) -> list[tuple[list[str | int], str]]:
        """Return ``(path, reason)`` for each flaw: unknown or unreachable states, bad renames."""
        found: list[tuple[list[str | int], str]] = []
        known = set(self.states)
        if self.initial not in known:
            found.append((["initial"], f"initial state {self.initial!r} is not in states"))
        for source, moves in self.transitions.items():
            if source not in known:
                found.append((["transitions", source], f"unknown state {source!r}"))
            for index, move in enumerate(moves):
                if move.to not in known:
                    found.append(
                        (["transitions", source, index], f"transition to unknown state {move.to!r}")
                    )
        reachable, frontier = {self.initial}, [self.initial]
        while frontier:
            for move in self.transitions.get(frontier.pop(), []):
                if move.to not in reachable:
                    reachable.add(move.to)
                    frontier.append(move.to)
        for state in self.states:
            if state not in reachable and self.initial in known:
                found.append((["states"], f"state {state!r} is unreachable from {self.initial!r}"))
        for old, new in self.renamed.items():
            if new not in known:
                found.append((["renamed", old], f"renamed to unknown state {new!r}"))
            if old in known:
                found.append((["renamed", old], f"renamed state {old!r} is still in states"))
        return found

    def is_final(self, state: str) -> bool:
        """True when no transition leaves ``state``."""
        return not self.transitions.get(state)

    def allowed(
        self, current: str, role: str | None = None, entity: Mapping[str, Any] | None = None
    ) -> list[str]:
        """States reachable in one move from ``current``.

        Args:
            current: the entity's state.
            role: the actor's role; None ignores roles (what any role could do).
            entity: field values used by ``when`` conditions; None ignores them.

        Returns:
            Target states in declaration order.
        """
        result = []
        for move in self.transitions.get(current, []):
            if role is not None and move.roles and role not in move.roles:
                continue
            if entity is not None and not _conditions_hold(move.when, entity):
                continue
            result.append(move.to)
        return list(dict.fromkeys(result))

    def check(
        self, current: str, target: str, role: str, entity: Mapping[str, Any] | None = None
    ) -> None:
        """Raise unless ``role`` may move an entity in ``current`` to ``target``.

        Args:
            current: the entity's state.
            target: the requested state.
            role: the actor's role.
            entity: field values for ``when`` conditions (``{"type": "pickup"}``).

        Raises:
            TransitionError: unknown target, no such move, wrong role, or a
                condition does not hold. ``allowed`` lists the legal targets.
        """
        allowed = self.allowed(current, role, entity or {})
        if target in allowed:
            return
        if target not in self.states:
            reason = f"unknown status {target!r}"
        elif not any(m.to == target for m in self.transitions.get(current, [])):
            reason = f"cannot go from {current!r} to {target!r}"
        elif target not in self.allowed(current, role, None):
            reason = f"role {role!r} may not move {current!r} to {target!r}"
        else:
            reason = f"{current!r} -> {target!r} does not apply to this {self.entity.name}"
        raise TransitionError(
            current, target, allowed, reason, unknown_target=target not in self.states
        )


def _conditions_hold(conditions: Mapping[str, Any], entity: Mapping[str, Any]) -> bool:
    for field, expected in conditions.items():
        value = entity.get(field)
        if isinstance(expected, list):
            if value not in expected:
                return False
        elif value != expected:
            return False
    return True


def _constraint_name(table: str, column: str) -> str:
    return f"{table}_{column}_tenantry_check"[:63]


async def sync_status_constraints(
    conn: asyncpg.Connection, machines: Sequence[StatusMachine]
) -> None:
    """Rewrite renamed states and replace each status CHECK constraint.

    Runs in one transaction on ``conn`` (whose search_path is the tenant
    schema): for each machine, drop the old constraint, ``UPDATE`` renamed
    states in the status column and in ``rename_columns``, then add
    ``CHECK (column IN (states))``. If any existing row holds a state the
    machine no longer has, PostgreSQL refuses the constraint and nothing changes.

    Raises:
        asyncpg.CheckViolationError: rows hold states outside the machine.
    """
    async with conn.transaction():
        for machine in machines:
            entity = machine.entity
            table, column = _quote(entity.table), _quote(entity.column)
            name = _quote(_constraint_name(entity.table, entity.column))
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
            for old, new in machine.renamed.items():
                for other_table, other_column in (
                    (entity.table, entity.column),
                    *entity.rename_columns,
                ):
                    await conn.execute(
                        f"UPDATE {_quote(other_table)} SET {_quote(other_column)} = $1"
                        f" WHERE {_quote(other_column)} = $2",
                        new,
                        old,
                    )
            states = ", ".join(_literal(s) for s in machine.states)
            await conn.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} IN ({states}))"
            )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

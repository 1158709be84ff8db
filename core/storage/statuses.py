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

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

if TYPE_CHECKING:
    import asyncpg

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
        declared_states: True when the spec lists ``states``; False when they
            are derived from ``initial`` and ``transitions``.
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
        self.declared_states = spec.states is not None
        self.renamed = dict(spec.renamed)

    def problems(self) -> list[tuple[list[str | int], str]]:
        """Find the flaws of the machine, each once, at the place that causes it.

        Flaws: an initial state or a transition source or target that is not a
        state, a state unreachable from the initial one, a rename to an unknown
        state or of a state still in use.

        A misspelt name is reported where it is written and not again through
        its consequences: a name close to a state of the machine
        (``confrimed`` for ``confirmed``, :func:`difflib.get_close_matches`)
        is named unknown with a "did you mean" hint and counts as that state
        when reachability is checked, so the states behind it are not also
        called unreachable. Without a ``states:`` list every name written is a
        state, so a written name that leads nowhere (a target, or an initial
        state, with no moves out) and resembles a state nothing reaches is
        taken for a misspelling of it; when both spellings could be meant, the
        one in the plugin's default machine is the right one.

        Returns:
            ``(path inside statuses.<entity>, reason)`` pairs; empty when valid.
        """
        found: list[tuple[list[str | int], str]] = []
        known = set(self.states)
        meant: dict[str, str] = {}  # name as written -> state it stands for

        def suggestion(name: str, candidates: Iterable[str]) -> str | None:
            close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.75)
            return close[0] if close else None

        def unknown(name: str, reason: str) -> str:
            guess = suggestion(name, known)
            if guess is None:
                return reason
            meant[name] = guess
            return f"{reason} (did you mean {guess!r}?)"

        if self.initial not in known:
            found.append(
                (
                    ["initial"],
                    unknown(self.initial, f"initial state {self.initial!r} is not in states"),
                )
            )
        for source, moves in self.transitions.items():
            if source not in known:
                found.append(
                    (["transitions", source], unknown(source, f"unknown state {source!r}"))
                )
            for index, move in enumerate(moves):
                if move.to not in known:
                    found.append(
                        (
                            ["transitions", source, index],
                            unknown(move.to, f"transition to unknown state {move.to!r}"),
                        )
                    )
        if not self.declared_states:
            found.extend(self._misspelt_derived_states(meant, suggestion))
        if self.initial in known or self.initial in meant:
            found += self._unreachable_regions(meant)
        for old, new in self.renamed.items():
            if new not in known:
                found.append((["renamed", old], f"renamed to unknown state {new!r}"))
            if old in known:
                found.append((["renamed", old], f"renamed state {old!r} is still in states"))
        return found

    def _unreachable_regions(self, meant: Mapping[str, str]) -> list[tuple[list[str | int], str]]:
        """One flaw per group of unreachable states, named by the state that leads into it.

        States reachable only through an unreachable state are unreachable
        because of it, so they are listed in its report instead of their own.
        """
        start = meant.get(self.initial, self.initial)
        reachable = self._reachable(meant)
        unreached = [s for s in self.states if s not in reachable and s not in meant]
        found: list[tuple[list[str | int], str]] = []
        covered: set[str] = set()
        # Entry states first (no unreachable state leads to them), then what a
        # cycle among unreachable states leaves over.
        entries = [
            s
            for s in unreached
            if not any(s in self._reachable(meant, o) - {o} for o in unreached if o != s)
        ]
        for state in [*entries, *unreached]:
            if state in covered:
                continue
            region = [s for s in unreached if s in self._reachable(meant, state)]
            covered.update(region)
            others = [s for s in region if s != state]
            path: list[str | int] = (
                ["transitions", state]
                if not self.declared_states and state in self.transitions
                else ["states"]
            )
            reason = f"state {state!r} is unreachable from {start!r}"
            if others:
                reason += f" (and so {'is' if len(others) == 1 else 'are'} {', '.join(map(repr, others))})"
            found.append((path, reason))
        return found

    def _reachable(self, meant: Mapping[str, str], start: str | None = None) -> set[str]:
        """States reachable from ``start`` (default the initial one), reading each name in
        ``meant`` as its state."""
        moves_out: dict[str, list[str]] = {}
        for source, moves in self.transitions.items():
            moves_out.setdefault(meant.get(source, source), []).extend(
                meant.get(m.to, m.to) for m in moves
            )
        if start is None:
            start = meant.get(self.initial, self.initial)
        reachable, frontier = {start}, [start]
        while frontier:
            for target in moves_out.get(frontier.pop(), []):
                if target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        return reachable

    def _misspelt_derived_states(
        self, meant: dict[str, str], suggestion: Callable[[str, Iterable[str]], str | None]
    ) -> list[tuple[list[str | int], str]]:
        """Misspellings in a machine whose states are derived from what is written.

        Pairs a written name that leads nowhere (no moves out) with a close
        state that nothing reaches; records the pair in ``meant``.
        """
        found: list[tuple[list[str | int], str]] = []
        vocabulary = set(self.entity.default.states or ()) | set(self.entity.default.transitions)
        for moves in self.entity.default.transitions.values():
            vocabulary.update(m if isinstance(m, str) else m.to for m in moves)
        renamed_to = set(self.renamed.values())
        unreachable = set(self.states) - self._reachable(meant)
        dead_ends = [
            s
            for s in self.states
            if not self.transitions.get(s) and s not in unreachable and s not in renamed_to
        ]
        for written in dead_ends:
            target = suggestion(written, unreachable - set(meant.values()))
            if target is None:
                continue
            if written in vocabulary and target not in vocabulary:
                # The dead end is the plugin's own name: the other spelling is the typo.
                meant[target] = written
                found.append(
                    (
                        ["transitions", target],
                        f"unknown state {target!r} (did you mean {written!r}?)",
                    )
                )
                continue
            meant[written] = target
            if written == self.initial:
                found.append(
                    (
                        ["initial"],
                        f"initial state {written!r} is not a state of the machine (did you mean {target!r}?)",
                    )
                )
            for source, moves in self.transitions.items():
                for index, move in enumerate(moves):
                    if move.to == written:
                        found.append(
                            (
                                ["transitions", source, index],
                                f"transition to unknown state {written!r} (did you mean {target!r}?)",
                            )
                        )
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

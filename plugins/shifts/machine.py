"""The ``shift`` status entity and its default machine: open -> submitted -> approved -> paid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core import StatusEntity, StatusMachineSpec, Transition

if TYPE_CHECKING:
    from core.storage.statuses import StatusMachine
    from plugins.shifts.config import ShiftsSettings

__all__ = ["DEFAULT_MACHINE", "SHIFT_ENTITY", "state_problems"]

_MANAGING = ["manager", "admin"]

DEFAULT_MACHINE = StatusMachineSpec(
    initial="open",
    transitions={
        # Closing a shift (with its sales) submits it; the system closes imported ones.
        "open": [Transition(to="submitted", roles=["staff", "manager", "admin", "system"])],
        "submitted": [
            Transition(to="approved", roles=_MANAGING),
            Transition(to="rejected", roles=_MANAGING),
        ],
        "rejected": [
            # The employee (or a manager, after a correction) sends it again.
            Transition(to="submitted", roles=["staff", "manager", "admin"]),
            Transition(to="approved", roles=_MANAGING),
        ],
        "approved": [
            Transition(to="paid", roles=_MANAGING),
            # Taken back for another look before it is paid.
            Transition(to="submitted", roles=_MANAGING),
        ],
    },
    states=["open", "submitted", "approved", "rejected", "paid"],
)
"""open -> submitted -> approved -> paid, with rejected (and back to submitted)."""

SHIFT_ENTITY = StatusEntity(
    name="shift",
    table="shifts",
    column="status",
    default=DEFAULT_MACHINE,
    rename_columns=(("shift_history", "from_status"), ("shift_history", "to_status")),
)
"""``statuses.shift`` in YAML: the ``shifts.status`` column; history columns renamed along."""


def state_problems(settings: ShiftsSettings, machine: StatusMachine) -> list[tuple[str, str]]:
    """What is wrong between ``features.shifts``' state names and the tenant's ``statuses.shift``.

    The settings Struct cannot see the tenant's machine, so this runs when the
    tenant file is validated, after its machines were built
    (:func:`plugins.shifts.hookimpls.check_settings`).

    Returns:
        ``(field path, reason)`` pairs; empty when the names fit: every state
        setting is a state of the machine, closing (``initial`` ->
        ``closed_status``) is a transition, and so are Approve and Reject
        from ``closed_status``.
    """
    problems: list[tuple[str, str]] = []
    known = ", ".join(machine.states)
    named = [
        ("closed_status", [settings.closed_status]),
        ("approved_status", [settings.approved_status]),
        ("rejected_status", [settings.rejected_status]),
        ("counted_statuses", settings.counted_statuses),
        ("correctable_statuses", settings.correctable_statuses),
    ]
    for field, states in named:
        for state in states:
            if state not in machine.states:
                problems.append(
                    (
                        f"features.shifts.{field}",
                        f"{state!r} is not a state of statuses.shift ({known})",
                    )
                )
    if problems:
        return problems
    moves = [
        ("closed_status", machine.initial, settings.closed_status),
        ("approved_status", settings.closed_status, settings.approved_status),
        ("rejected_status", settings.closed_status, settings.rejected_status),
    ]
    for field, source, target in moves:
        if target not in machine.allowed(source):
            problems.append(
                (
                    f"features.shifts.{field}",
                    f"statuses.shift has no transition {source!r} -> {target!r}",
                )
            )
    return problems

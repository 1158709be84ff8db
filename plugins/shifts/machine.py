"""The ``shift`` status entity and its default machine: open -> submitted -> approved -> paid."""

from __future__ import annotations

from core import StatusEntity, StatusMachineSpec, Transition

__all__ = ["DEFAULT_MACHINE", "SHIFT_ENTITY"]

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

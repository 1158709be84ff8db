"""The ``orders`` status entity and its default machine (the unified marketplace statuses)."""

from __future__ import annotations

from core import StatusEntity, StatusMachineSpec, Transition

__all__ = ["DEFAULT_MACHINE", "ORDERS_ENTITY"]

_STAFF = ["partner", "admin"]

DEFAULT_MACHINE = StatusMachineSpec(
    initial="pending",
    transitions={
        "pending": [
            Transition(to="preparing", roles=_STAFF),
            Transition(to="rejected", roles=_STAFF),
            # system: the orders.expire job cancels orders nobody accepted.
            Transition(to="cancelled", roles=["customer", "admin", "system"]),
        ],
        "preparing": [
            Transition(to="ready", roles=_STAFF),
            Transition(to="cancelled", roles=["admin"]),
        ],
        "ready": [
            Transition(to="delivering", roles=_STAFF, when={"type": "delivery"}),
            Transition(to="completed", roles=_STAFF, when={"type": "pickup"}),
            Transition(to="cancelled", roles=["admin"]),
        ],
        "delivering": [Transition(to="completed", roles=_STAFF)],
    },
    states=["pending", "preparing", "ready", "delivering", "completed", "rejected", "cancelled"],
)
"""pending → preparing → ready → (delivering, delivery only) → completed; rejected; cancelled."""

ORDERS_ENTITY = StatusEntity(
    name="orders",
    table="orders",
    column="status",
    default=DEFAULT_MACHINE,
    rename_columns=(("order_history", "from_status"), ("order_history", "to_status")),
)
"""``statuses.orders`` in YAML: the ``orders.status`` column, history columns renamed along."""

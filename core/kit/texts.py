"""Labels and messages from the tenant's texts: status labels, the bot text of a refusal.

Every user-facing word of a bot comes from the tenant's texts in its locale
(``Tenant.text``: the tenant's ``texts:`` block, then the plugins' texts for
the locale, then English), never from an exception's English ``detail``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.errors import ApiError
    from core.runtime.tenant import Tenant

__all__ = ["error_text", "status_label"]

GENERIC_ERROR_KEY = "error.generic"
"""The core's text shown when a refusal has no text of its own."""


def status_label(tenant: Tenant, entity: str, status: str) -> str:
    """The label of ``status`` of ``entity`` in the tenant's locale.

    Reads the text ``<entity>.status.<status>`` (``booking.status.no_show``,
    ``orders.status.preparing``), which the plugin ships and a tenant may
    override under ``texts:``; a status without one (a state only the
    tenant's machine has) is shown as its name.

    Args:
        tenant: the tenant.
        entity: the status entity (``StatusEntity.name``: ``booking``, ``orders``).
        status: the state.
    """
    key = f"{entity}.status.{status}"
    label = tenant.text(key)
    return status if label == key else label


def error_text(tenant: Tenant, error: ApiError, **fields: Any) -> str:
    """The bot's words for a refusal: the text named by its code, in the tenant's locale.

    The text of code ``<plugin>.<what>`` is ``<plugin>.error.<what>``
    (``booking.slot_taken`` -> ``booking.error.slot_taken``), formatted with
    the error's extension members and ``fields``; a code without a text gets
    the core's ``error.generic``, never the English ``detail``.

    Args:
        tenant: the tenant.
        error: the refusal (``core.errors.ApiError``).
        **fields: more (or localized) fields for the text, e.g. a formatted
            amount in place of minor units.
    """
    plugin, _, what = error.code.partition(".")
    key = f"{plugin}.error.{what}"
    text = tenant.text(key, **{**error.extensions, **fields})
    return tenant.text(GENERIC_ERROR_KEY) if text == key else text

"""Inline keyboards of the orders bot and the callback data their buttons carry.

Callback data (Bot API: 1-64 bytes):

* ``om:h`` stores, ``om:s:<store>`` categories, ``om:c:<category>`` items,
  ``om:a:<item id>`` add one to the cart;
* ``oc:inc:<item id>`` / ``oc:dec:<item id>`` / ``oc:clear`` / ``oc:go`` cart;
* ``ck:t:<pickup|delivery>`` / ``ck:ok`` / ``ck:no`` checkout;
* ``os:<order id>:<state seen>:<target>:<c|p|a>`` status change in a role.

Callback data come back from the client, so a press can carry anything: an
id is only ASCII digits of a positive bigint (:func:`_row_id`), a store or
category only a slug; anything else is answered as a button that is gone.
"""

from __future__ import annotations

import re

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
"""Store and category ids (``plugins.orders.config`` and the API take only these)."""


def _row_id(text: str) -> int | None:
    """The database id packed in callback data, or None when ``text`` is not one.

    ``items.id`` and ``orders.id`` are positive PostgreSQL bigints. Only ASCII
    digits count: ``str.isdigit`` also accepts digits such as ``²`` that
    ``int`` refuses.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= 2**63 - 1 else None


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def _keyboard(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)

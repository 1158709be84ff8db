"""Audience segments: groups of a tenant's users that one plugin knows and another may address.

A plugin returns :class:`Segment` objects from the ``register_segments`` hook
(``core/hookspecs.py``); the broadcast plugin offers them as campaign
audiences without importing the plugin that defined them. A segment answers
with Telegram user ids; the consumer intersects them with its own table
(the broadcast plugin: its active subscribers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["Segment", "SegmentPreset"]


class SegmentPreset(msgspec.Struct, frozen=True):
    """One ready-made choice of a segment's parameters, offered as a bot button.

    Attributes:
        title: shown to the admin, in the tenant's locale ("Visited in the last 30 days").
        params: the parameters (``{"days": 30}``), JSON-ready.
    """

    title: str
    params: dict[str, Any] = {}


class Segment(msgspec.Struct, frozen=True):
    """A named group of users, computed on demand by the plugin that owns the data.

    Attributes:
        name: ``<plugin>.<what>`` (``booking.visited``), stable: API bodies and
            stored campaigns name it.
        title: what it is, in the tenant's locale, for lists and reports.
        members: ``async members(conn, **params) -> Iterable[int]``: the
            Telegram user ids in the segment; ``conn`` is a connection in the
            tenant's schema (inside the caller's transaction).
        params: accepted parameter name -> type (``int`` or ``str``); a value
            of another type, or an unknown name, is refused by the caller.
        defaults: values of parameters a caller leaves out.
        presets: choices offered in the bot; empty offers the defaults alone.
    """

    name: str
    title: str
    members: Callable[..., Awaitable[Iterable[int]]]
    params: Mapping[str, type] = {}
    defaults: dict[str, Any] = {}
    presets: tuple[SegmentPreset, ...] = ()

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The defaults overlaid with ``given``, checked against :attr:`params`.

        Raises:
            ValueError: an unknown parameter, a missing one, or a value of the wrong type.
        """
        values = dict(self.defaults)
        for name, value in (given or {}).items():
            kind = self.params.get(name)
            if kind is None:
                raise ValueError(f"segment {self.name} takes no parameter {name!r}")
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"segment {self.name}: {name} must be {kind.__name__}")
            values[name] = value
        missing = [name for name in self.params if name not in values]
        if missing:
            raise ValueError(f"segment {self.name} needs {', '.join(missing)}")
        return values

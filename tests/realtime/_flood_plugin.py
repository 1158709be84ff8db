"""``flood``: a plugin with no behaviour, so a tenant has a ``flood`` topic for events the tests publish.

docs/plugins/realtime.md gives every other plugin's events a topic named
after the plugin, for admins; the tests publish ``flood.*`` events (large
ones, many at once, or dated in the past) without side effects in other
plugins. Registered by the tests as ``("flood", _flood_plugin)``.
"""

from __future__ import annotations

import msgspec

from core import hookimpl


class FloodSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``features.flood``: no settings."""


@hookimpl
def register_settings() -> type[FloodSettings]:
    """The empty settings Struct (``flood: {}``)."""
    return FloodSettings

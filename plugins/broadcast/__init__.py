"""The broadcast plugin: subscribers, audiences and campaigns sent at Telegram's rate, never twice.

Enable it with ``features.broadcast`` in a tenant file; see ``docs/plugins/broadcast.md``.
Refusals are the core's errors (``core.errors``) with codes ``broadcast.<what>``.
"""

from __future__ import annotations

from plugins.broadcast.config import BroadcastSettings, QuietHours, parse_quiet_hours

__all__ = ["BroadcastSettings", "QuietHours", "parse_quiet_hours"]

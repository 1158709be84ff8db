"""Settings of the broadcast plugin: the ``features.broadcast`` block of a tenant file."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated

import msgspec

__all__ = ["BULK_LIMIT", "PAID_LIMIT", "BroadcastSettings", "QuietHours", "parse_quiet_hours"]

BULK_LIMIT = 30
"""Telegram: a bot may send about 30 messages per second in bulk (Bot API FAQ,
"My bot is hitting limits, how do I avoid this?")."""
PAID_LIMIT = 1000
"""Telegram: with ``allow_paid_broadcast`` a bot may send up to 1000 messages per
second, paid in Stars beyond the free 30 (Bot API 7.11, copyMessage.allow_paid_broadcast)."""

_QUIET = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
_ROLE = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class QuietHours(msgspec.Struct, frozen=True):
    """Local hours in which no campaign message is sent.

    Attributes:
        starts: local start (inclusive).
        ends: local end (exclusive); at or before ``starts`` means the next day.
    """

    starts: time
    ends: time

    def next_end(self, local: datetime) -> datetime | None:
        """When the quiet period holding the aware local time ``local`` ends, or None if none does."""
        minute = local.hour * 60 + local.minute
        start = self.starts.hour * 60 + self.starts.minute
        end = self.ends.hour * 60 + self.ends.minute
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if not inside:
            return None
        ends_at = local.replace(
            hour=self.ends.hour, minute=self.ends.minute, second=0, microsecond=0
        )
        if ends_at <= local:
            ends_at += timedelta(days=1)
        return ends_at


def parse_quiet_hours(text: str) -> QuietHours:
    """Parse ``"HH:MM-HH:MM"`` in the tenant's time zone (``"22:00-09:00"`` spans midnight).

    Raises:
        ValueError: not in that form, or an empty range (start equals end).
    """
    match = _QUIET.match(text)
    if not match:
        raise ValueError(f"quiet_hours must look like '22:00-09:00', got {text!r}")
    start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
    if (start_h, start_m) == (end_h, end_m):
        raise ValueError(f"quiet_hours {text!r} is empty: start and end are the same")
    return QuietHours(starts=time(start_h, start_m), ends=time(end_h, end_m))


class BroadcastSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``features.broadcast``: rate, subscription, senders and quiet hours.

    Attributes:
        rate_per_second: campaign messages per second for the tenant's bot, held
            across all runtimes (one shared limiter per bot in Redis). 1-30, or
            up to 1000 with ``allow_paid_broadcast``. Default 25 (Telegram's bulk
            limit is about 30 per second per bot).
        allow_paid_broadcast: send with Bot API ``allow_paid_broadcast`` (Stars
            are charged for messages beyond the free 30 per second), which
            allows ``rate_per_second`` above 30. Default False.
        subscribe_on_start: ``/start`` subscribes the user. Default True.
        unsubscribe_button: every campaign message (but albums, which take no
            buttons) carries an "Unsubscribe" button. Default True.
        senders: roles (the core's roles: ``admin`` is ``bot.admins``) that may
            run ``/broadcast`` and ``/subscribers``. Default ``[admin]``.
        quiet_hours: ``"HH:MM-HH:MM"`` in the tenant's time zone during which
            campaigns wait (``"22:00-09:00"``). Default none.
        max_attempts: sends of one recipient after Telegram 5xx or network
            errors before it counts as failed. 1-10, default 3.
        progress_seconds: the admin's status message and the
            ``broadcast.progress`` event are updated at most this often,
            seconds. 1-300, default 5.
        failover_seconds: a runtime that stopped beating its heartbeat this
            long ago is taken for dead: its claimed deliveries go to the
            others and its sends in flight are reported ``unknown``. 2-300,
            default 10.
    """

    rate_per_second: Annotated[int, msgspec.Meta(ge=1, le=PAID_LIMIT)] = 25
    allow_paid_broadcast: bool = False
    subscribe_on_start: bool = True
    unsubscribe_button: bool = True
    senders: list[_ROLE] = msgspec.field(default_factory=lambda: ["admin"])
    quiet_hours: str | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    progress_seconds: Annotated[float, msgspec.Meta(ge=1, le=300)] = 5.0
    failover_seconds: Annotated[float, msgspec.Meta(ge=2, le=300)] = 10.0

    def __post_init__(self) -> None:
        """Check the rate against Telegram's limit and parse the quiet hours.

        Raises:
            ValueError: a rate above 30 without ``allow_paid_broadcast``, or
                malformed ``quiet_hours`` (reported as a config error).
        """
        if self.rate_per_second > BULK_LIMIT and not self.allow_paid_broadcast:
            raise ValueError(
                f"rate_per_second {self.rate_per_second} is above Telegram's {BULK_LIMIT} "
                "messages per second; set allow_paid_broadcast: true to go higher"
            )
        if self.quiet_hours is not None:
            parse_quiet_hours(self.quiet_hours)
        if not self.senders:
            raise ValueError("senders must name at least one role")

    @property
    def quiet(self) -> QuietHours | None:
        """The parsed ``quiet_hours``, or None."""
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None

"""Who a campaign goes to: everyone, one language, or a segment another plugin offers.

An audience is stored with its campaign as JSON:

* ``{"kind": "all"}``: every active subscriber;
* ``{"kind": "language", "language": "ru"}``: active subscribers whose Telegram
  ``language_code`` is ``ru`` (``""``: unknown);
* ``{"kind": "segment", "segment": "booking.visited", "params": {"days": 30}}``:
  active subscribers among the members of a segment from the
  ``register_segments`` hook (:class:`core.segments.Segment`).

The members are read when the campaign is created, so the count the admin
confirms is the number of deliveries written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import BadRequest
from core.runtime.plugins import resolve
from plugins.broadcast import repository as repo

if TYPE_CHECKING:
    from core import Tenant
    from core.segments import Segment

__all__ = ["audience_label", "count_audience", "members_filter", "segment_choices", "segments_of"]

ALL = {"kind": "all"}


async def segments_of(tenant: Tenant) -> dict[str, Segment]:
    """The segments the tenant's enabled plugins offer, by name."""
    found: dict[str, Segment] = {}
    for answer in tenant.hook.register_segments(tenant=tenant):
        for segment in (await resolve(answer)) or ():
            found[segment.name] = segment
    return found


def segment_choices(segments: dict[str, Segment]) -> list[tuple[dict[str, Any], str]]:
    """Every ready-made segment audience with its title: each preset, or the defaults alone."""
    choices = []
    for segment in segments.values():
        for preset in segment.presets or ():
            choices.append(
                (
                    {"kind": "segment", "segment": segment.name, "params": preset.params},
                    preset.title,
                )
            )
        if not segment.presets:
            choices.append(
                ({"kind": "segment", "segment": segment.name, "params": {}}, segment.title)
            )
    return choices


def _check_shape(audience: dict[str, Any]) -> None:
    kind = audience.get("kind")
    if kind == "all":
        return
    if kind == "language":
        language = audience.get("language")
        if not isinstance(language, str) or len(language) > 35:
            raise BadRequest("broadcast.bad_audience", "a language audience needs a language code")
        return
    if kind == "segment":
        if not isinstance(audience.get("segment"), str):
            raise BadRequest("broadcast.bad_audience", "a segment audience needs a segment name")
        if not isinstance(audience.get("params") or {}, dict):
            raise BadRequest("broadcast.bad_audience", "segment params must be an object")
        return
    raise BadRequest(
        "broadcast.bad_audience", "audience kind must be all, language or segment", kind=kind
    )


async def members_filter(
    tenant: Tenant, conn: Any, audience: dict[str, Any]
) -> tuple[str | None, Sequence[int] | None]:
    """The ``(language, among user ids)`` filter of ``audience`` over active subscribers.

    Raises:
        BadRequest: ``broadcast.bad_audience`` (malformed), ``broadcast.unknown_segment``
            (no enabled plugin offers it) or ``broadcast.bad_segment_params``.
    """
    _check_shape(audience)
    if audience["kind"] == "all":
        return None, None
    if audience["kind"] == "language":
        return audience["language"], None
    segments = await segments_of(tenant)
    segment = segments.get(audience["segment"])
    if segment is None:
        raise BadRequest(
            "broadcast.unknown_segment",
            f"no enabled plugin offers the segment {audience['segment']!r}",
            segment=audience["segment"],
            known=sorted(segments),
        )
    try:
        params = segment.resolve_params(audience.get("params"))
    except ValueError as exc:
        raise BadRequest("broadcast.bad_segment_params", str(exc)) from None
    members = await segment.members(conn, **params)
    return None, sorted({int(m) for m in members})


async def count_audience(tenant: Tenant, audience: dict[str, Any]) -> int:
    """How many active subscribers ``audience`` holds right now.

    Raises:
        BadRequest: see :func:`members_filter`.
    """
    async with tenant.db.transaction() as conn:
        language, among = await members_filter(tenant, conn, audience)
        return await repo.count_active(conn, language, among)


async def audience_label(tenant: Tenant, audience: dict[str, Any]) -> str:
    """The audience in words, in the tenant's locale (for previews and reports)."""
    kind = audience.get("kind")
    if kind == "language":
        return tenant.text("broadcast.audience.language", language=audience.get("language") or "?")
    if kind == "segment":
        segment = (await segments_of(tenant)).get(audience.get("segment", ""))
        if segment is None:
            return str(audience.get("segment"))
        params = audience.get("params") or {}
        for preset in segment.presets:
            if preset.params == params:
                return preset.title
        return segment.title
    return tenant.text("broadcast.audience.all")

"""SQL of the broadcast plugin: small named functions over asyncpg, unqualified table names.

Every function takes a connection whose ``search_path`` is the tenant schema
(``tenant.db.acquire()`` / ``tenant.db.transaction()``). Times are timestamptz (UTC).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "CAMPAIGN_COLUMNS",
    "campaign",
    "campaign_counts",
    "cancel_pending",
    "claim_batch",
    "insert_campaign",
    "insert_deliveries",
    "mark_sending",
    "record_result",
]

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

CAMPAIGN_COLUMNS = """
    id, status, audience, content, total, created_by, created_via, scheduled_at, started_at,
    finished_at, status_chat_id, status_message_id, created_at
"""

DELIVERY_STATES = ("pending", "sending", "sent", "failed", "blocked", "unknown", "cancelled")
"""States of ``broadcast_deliveries.status`` (the CHECK in migrations/0001_init.sql)."""

# ---------------------------------------------------------------- subscribers


async def subscribe(
    conn: Conn,
    user_id: int,
    *,
    first_name: str,
    username: str | None,
    language_code: str | None,
    source: str,
    rejoin: tuple[str, ...],
) -> bool:
    """Insert or refresh a subscriber; True when they are (again) active afterwards.

    Args:
        rejoin: ``left_reason`` values that this subscription cancels: ``/start``
            brings back those Telegram unsubscribed (``blocked``,
            ``chat_not_found``), ``/subscribe`` everyone.
    """
    status = await conn.fetchval(
        """
        INSERT INTO broadcast_subscribers (user_id, first_name, username, language_code, source)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id) DO UPDATE SET
            first_name = EXCLUDED.first_name, username = EXCLUDED.username,
            language_code = coalesce(EXCLUDED.language_code, broadcast_subscribers.language_code),
            status = CASE WHEN broadcast_subscribers.left_reason = ANY($6::text[])
                          THEN 'active' ELSE broadcast_subscribers.status END,
            left_at = CASE WHEN broadcast_subscribers.left_reason = ANY($6::text[])
                           THEN NULL ELSE broadcast_subscribers.left_at END,
            left_reason = CASE WHEN broadcast_subscribers.left_reason = ANY($6::text[])
                               THEN NULL ELSE broadcast_subscribers.left_reason END
        RETURNING status
        """,
        user_id,
        first_name[:256],
        username[:64] if username else None,
        language_code[:35] if language_code else None,
        source,
        list(rejoin),
    )
    return status == "active"


async def import_subscriber(
    conn: Conn, user_id: int, first_name: str, username: str | None, language_code: str | None
) -> bool:
    """Insert an imported subscriber unless the user id exists; True when inserted."""
    status = await conn.execute(
        "INSERT INTO broadcast_subscribers (user_id, first_name, username, language_code, source)"
        " VALUES ($1, $2, $3, $4, 'import') ON CONFLICT (user_id) DO NOTHING",
        user_id,
        first_name,
        username,
        language_code,
    )
    return status.endswith(" 1")


async def unsubscribe(
    conn: Conn, user_id: int, *, status: str, reason: str, detail: str = ""
) -> bool:
    """Make an active subscriber leave (``unsubscribed`` or ``blocked``); True when they were active."""
    result = await conn.execute(
        """
        UPDATE broadcast_subscribers
        SET status = $2, left_reason = $3, left_detail = $4, left_at = now()
        WHERE user_id = $1 AND status = 'active'
        """,
        user_id,
        status,
        reason,
        detail[:500],
    )
    return result.endswith(" 1")


async def subscriber(conn: Conn, user_id: int) -> asyncpg.Record | None:
    """The subscriber row of ``user_id``, or None."""
    return await conn.fetchrow("SELECT * FROM broadcast_subscribers WHERE user_id = $1", user_id)


async def subscriber_counts(conn: Conn) -> dict[str, int]:
    """Subscribers by status: ``{"active": 148, "unsubscribed": 3, "blocked": 2}``."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM broadcast_subscribers GROUP BY status"
    )
    counts = dict.fromkeys(("active", "unsubscribed", "blocked"), 0)
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


async def language_counts(conn: Conn) -> list[tuple[str, int]]:
    """Active subscribers by language code (``""`` for unknown), largest first."""
    rows = await conn.fetch(
        "SELECT coalesce(language_code, '') AS language, count(*) AS n FROM broadcast_subscribers"
        " WHERE status = 'active' GROUP BY 1 ORDER BY n DESC, language"
    )
    return [(r["language"], r["n"]) for r in rows]


async def count_active(conn: Conn, language: str | None, among: Sequence[int] | None) -> int:
    """Active subscribers, optionally of one language and/or among some user ids."""
    return await conn.fetchval(
        "SELECT count(*) FROM broadcast_subscribers WHERE status = 'active'"
        " AND ($1::text IS NULL OR coalesce(language_code, '') = $1)"
        " AND ($2::bigint[] IS NULL OR user_id = ANY($2::bigint[]))",
        language,
        None if among is None else list(among),
    )


async def mark_user_blocked(conn: Conn, user_id: int) -> None:
    """Set the core's ``users.blocked`` on a 403, as ``core.kit.telegram`` does for every send."""
    await conn.execute("UPDATE users SET blocked = true WHERE telegram_id = $1", user_id)


# ---------------------------------------------------------------- campaigns


async def insert_campaign(
    conn: Conn,
    *,
    status: str,
    audience: dict[str, Any],
    content: dict[str, Any],
    created_by: int | None,
    created_via: str,
    scheduled_at: datetime | None,
) -> int:
    """Create a campaign row; return its id."""
    return await conn.fetchval(
        """
        INSERT INTO broadcast_campaigns (status, audience, content, created_by, created_via,
                                         scheduled_at, started_at)
        VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6, CASE WHEN $1 = 'running' THEN now() END)
        RETURNING id
        """,
        status,
        json.dumps(audience),
        json.dumps(content),
        created_by,
        created_via,
        scheduled_at,
    )


async def insert_deliveries(
    conn: Conn, campaign_id: int, language: str | None, among: Sequence[int] | None
) -> int:
    """One pending delivery per active subscriber of the audience; set and return the total."""
    await conn.execute(
        """
        INSERT INTO broadcast_deliveries (campaign_id, chat_id)
        SELECT $1, user_id FROM broadcast_subscribers
        WHERE status = 'active'
          AND ($2::text IS NULL OR coalesce(language_code, '') = $2)
          AND ($3::bigint[] IS NULL OR user_id = ANY($3::bigint[]))
        ORDER BY user_id
        ON CONFLICT (campaign_id, chat_id) DO NOTHING
        """,
        campaign_id,
        language,
        None if among is None else list(among),
    )
    return await conn.fetchval(
        "UPDATE broadcast_campaigns SET total ="
        " (SELECT count(*) FROM broadcast_deliveries WHERE campaign_id = $1)"
        " WHERE id = $1 RETURNING total",
        campaign_id,
    )


def _decode(row: asyncpg.Record | None) -> dict[str, Any] | None:
    if row is None:
        return None
    value = dict(row)
    for name in ("audience", "content"):
        if isinstance(value.get(name), str):
            value[name] = json.loads(value[name])
    return value


async def campaign(conn: Conn, campaign_id: int) -> dict[str, Any] | None:
    """The campaign with ``campaign_id`` (audience and content decoded), or None."""
    row = await conn.fetchrow(
        f"SELECT {CAMPAIGN_COLUMNS} FROM broadcast_campaigns WHERE id = $1", campaign_id
    )
    return _decode(row)


async def list_campaigns(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """The latest campaigns, newest first."""
    rows = await conn.fetch(
        f"SELECT {CAMPAIGN_COLUMNS} FROM broadcast_campaigns ORDER BY id DESC LIMIT $1", limit
    )
    return [_decode(r) for r in rows]  # type: ignore[misc]


async def active_campaigns(conn: Conn) -> list[asyncpg.Record]:
    """Ids, states and start times of scheduled and running campaigns (to rebuild the due set)."""
    return await conn.fetch(
        "SELECT id, status, scheduled_at FROM broadcast_campaigns"
        " WHERE status IN ('scheduled', 'running')"
    )


async def set_campaign_status(
    conn: Conn, campaign_id: int, target: str, allowed_from: Sequence[str]
) -> str | None:
    """Move a campaign to ``target`` if it is in one of ``allowed_from``; the new status or None."""
    return await conn.fetchval(
        """
        UPDATE broadcast_campaigns SET status = $2,
            started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
            finished_at = CASE WHEN $2 IN ('done', 'cancelled') THEN now() ELSE finished_at END
        WHERE id = $1 AND status = ANY($3::text[])
        RETURNING status
        """,
        campaign_id,
        target,
        list(allowed_from),
    )


async def set_status_message(conn: Conn, campaign_id: int, chat_id: int, message_id: int) -> None:
    """Remember the admin's status message that progress edits."""
    await conn.execute(
        "UPDATE broadcast_campaigns SET status_chat_id = $2, status_message_id = $3 WHERE id = $1",
        campaign_id,
        chat_id,
        message_id,
    )


# ---------------------------------------------------------------- deliveries


async def claim_batch(
    conn: Conn, campaign_id: int, runner: str, size: int, lease_seconds: float
) -> list[asyncpg.Record]:
    """Claim up to ``size`` pending deliveries for ``runner`` (FOR UPDATE SKIP LOCKED).

    Two runners claiming at once get disjoint rows; a claim lapses after
    ``lease_seconds`` (or at once when its runner is found dead), so rows of a
    runner that stopped are claimed again.
    """
    return await conn.fetch(
        """
        UPDATE broadcast_deliveries d
        SET claimed_by = $2, claim_expires_at = now() + make_interval(secs => $4)
        WHERE d.id IN (
            SELECT id FROM broadcast_deliveries
            WHERE campaign_id = $1 AND status = 'pending'
              AND (claim_expires_at IS NULL OR claim_expires_at < now())
            ORDER BY id
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        )
        RETURNING d.id, d.chat_id, d.attempts
        """,
        campaign_id,
        runner,
        size,
        lease_seconds,
    )


async def mark_sending(conn: Conn, delivery_id: int, runner: str) -> bool:
    """Set a claimed delivery to ``sending`` right before its Bot API call; False if it is not ours now."""
    result = await conn.execute(
        "UPDATE broadcast_deliveries SET status = 'sending', sending_at = now(),"
        " attempts = attempts + 1"
        " WHERE id = $1 AND claimed_by = $2 AND status = 'pending'",
        delivery_id,
        runner,
    )
    return result.endswith(" 1")


async def record_result(
    conn: Conn,
    delivery_id: int,
    status: str,
    *,
    message_id: int | None = None,
    error_code: int | None = None,
    error: str = "",
) -> None:
    """Write a send's outcome (``sent``, ``failed``, ``blocked``).

    A row the sweep took for ``unknown`` (its runner looked dead) but whose
    send did finish gets its real outcome.
    """
    await conn.execute(
        """
        UPDATE broadcast_deliveries
        SET status = $2, message_id = $3, error_code = $4, error = $5, finished_at = now()
        WHERE id = $1 AND status IN ('sending', 'unknown')
        """,
        delivery_id,
        status,
        message_id,
        error_code,
        error[:500],
    )


async def back_to_pending(
    conn: Conn, delivery_id: int, *, release_for: float | None, error_code: int | None, error: str
) -> None:
    """Return a delivery Telegram did not take (429, 5xx) to ``pending``.

    Args:
        release_for: None keeps the caller's claim (it retries itself after a
            429 pause); else the claim is dropped and the row may be claimed
            again after that many seconds (backoff).
    """
    await conn.execute(
        """
        UPDATE broadcast_deliveries
        SET status = 'pending', error_code = $3, error = $4,
            claimed_by = CASE WHEN $2::float8 IS NULL THEN claimed_by END,
            claim_expires_at = CASE WHEN $2::float8 IS NULL THEN claim_expires_at
                                    ELSE now() + make_interval(secs => $2::float8) END
        WHERE id = $1 AND status = 'sending'
        """,
        delivery_id,
        release_for,
        error_code,
        error[:500],
    )


async def other_runners(conn: Conn, campaign_id: int, runner: str) -> list[str]:
    """Runners other than ``runner`` holding pending or sending deliveries of the campaign."""
    rows = await conn.fetch(
        "SELECT DISTINCT claimed_by FROM broadcast_deliveries"
        " WHERE campaign_id = $1 AND status IN ('pending', 'sending')"
        " AND claimed_by IS NOT NULL AND claimed_by <> $2",
        campaign_id,
        runner,
    )
    return [r["claimed_by"] for r in rows]


async def forget_runners(conn: Conn, campaign_id: int, runners: Sequence[str]) -> int:
    """Rows of dead ``runners``: 'sending' becomes 'unknown', pending claims are dropped.

    Returns:
        How many deliveries became ``unknown``.
    """
    result = await conn.execute(
        "UPDATE broadcast_deliveries SET status = 'unknown', finished_at = now(),"
        " error = 'the runtime stopped during the send'"
        " WHERE campaign_id = $1 AND status = 'sending' AND claimed_by = ANY($2::text[])",
        campaign_id,
        list(runners),
    )
    await conn.execute(
        "UPDATE broadcast_deliveries SET claimed_by = NULL, claim_expires_at = NULL"
        " WHERE campaign_id = $1 AND status = 'pending' AND claimed_by = ANY($2::text[])",
        campaign_id,
        list(runners),
    )
    return int(result.rsplit(" ", 1)[-1])


async def release_claims(conn: Conn, campaign_id: int | None, runner: str | None) -> None:
    """Drop claims on pending deliveries: of one campaign (pause) and/or one runner (shutdown)."""
    await conn.execute(
        "UPDATE broadcast_deliveries SET claimed_by = NULL, claim_expires_at = NULL"
        " WHERE status = 'pending' AND ($1::bigint IS NULL OR campaign_id = $1)"
        " AND ($2::text IS NULL OR claimed_by = $2)",
        campaign_id,
        runner,
    )


async def cancel_pending(conn: Conn, campaign_id: int) -> int:
    """Cancel the deliveries not yet sent; return how many."""
    result = await conn.execute(
        "UPDATE broadcast_deliveries SET status = 'cancelled', finished_at = now()"
        " WHERE campaign_id = $1 AND status = 'pending'",
        campaign_id,
    )
    return int(result.rsplit(" ", 1)[-1])


async def retry_unknown(conn: Conn, campaign_id: int) -> int:
    """Put ``unknown`` deliveries back to pending (the admin accepts a possible second copy)."""
    result = await conn.execute(
        "UPDATE broadcast_deliveries SET status = 'pending', claimed_by = NULL,"
        " claim_expires_at = NULL WHERE campaign_id = $1 AND status = 'unknown'",
        campaign_id,
    )
    return int(result.rsplit(" ", 1)[-1])


async def campaign_counts(conn: Conn, campaign_id: int) -> dict[str, int]:
    """Deliveries of a campaign by status, every state present (0 when none)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM broadcast_deliveries WHERE campaign_id = $1"
        " GROUP BY status",
        campaign_id,
    )
    counts = dict.fromkeys(DELIVERY_STATES, 0)
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


async def deliveries(
    conn: Conn, campaign_id: int, status: str | None, after_id: int, limit: int
) -> list[asyncpg.Record]:
    """Per-recipient results of a campaign in id order, after ``after_id`` (keyset paging)."""
    return await conn.fetch(
        "SELECT id, chat_id, status, attempts, message_id, error_code, error, sending_at,"
        " finished_at FROM broadcast_deliveries WHERE campaign_id = $1"
        " AND ($2::text IS NULL OR status = $2) AND id > $3 ORDER BY id LIMIT $4",
        campaign_id,
        status,
        after_id,
        limit,
    )

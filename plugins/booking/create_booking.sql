-- A new booking in one statement: the row, a hold per resource and the history
-- rows, answered as repository.BOOKING_COLUMNS shapes a booking.
--
-- $1-$13 the bookings columns (status is the booking's status after creation);
-- $14 the resource ids to hold, sorted (concurrent creates then wait for each
-- other's holds in one order, never in a cycle); $15/$16 the held window;
-- $17-$21 the history rows as parallel arrays (from, to, role, actor, comment).
--
-- The holds and the history refer to the booking inserted by the same statement
-- (foreign keys are checked at its end). A resource already held then raises
-- the exclusion violation of resource_holds_no_overlap, as a separate INSERT
-- did. The statement's snapshot does not show its own inserts, so the resource
-- codes come from the holds CTE, not from resource_holds.
WITH booking AS (
    INSERT INTO bookings (status, user_id, customer_name, phone, party_size, service_code,
        starts_at, ends_at, buffer_before_minutes, buffer_after_minutes, price, comment, source)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING *
), holds AS (
    INSERT INTO resource_holds (resource_id, booking_id, starts_at, ends_at)
    SELECT held.resource_id, booking.id, $15, $16
    FROM booking, unnest($14::bigint[]) WITH ORDINALITY AS held (resource_id, n)
    ORDER BY held.n
    RETURNING resource_id
), history AS (
    INSERT INTO booking_history (booking_id, from_status, to_status, actor_role, actor_id, comment)
    SELECT booking.id, change.from_status, change.to_status, change.actor_role,
        change.actor_id, change.comment
    FROM booking,
        unnest($17::text[], $18::text[], $19::text[], $20::bigint[], $21::text[])
            WITH ORDINALITY AS change (from_status, to_status, actor_role, actor_id, comment, n)
    ORDER BY change.n
)
SELECT b.id, b.status, b.user_id, b.customer_name, b.phone, b.party_size, b.service_code,
    b.starts_at, b.ends_at, b.buffer_before_minutes, b.buffer_after_minutes, b.price,
    b.comment, b.source, b.created_at, b.reminded_at,
    coalesce((SELECT array_agg(r.code ORDER BY r.code) FROM holds h
              JOIN resources r ON r.id = h.resource_id), '{}') AS resources
FROM booking b

-- The transactional outbox (core.events): a plugin writes its domain event
-- here in the transaction that makes the change, so the event exists if and
-- only if the change committed. The relay moves rows to the Redis stream in
-- id order and deletes them in one transaction.
CREATE TABLE tenantry_outbox (
    id           bigserial   PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    name         text        NOT NULL,
    payload      jsonb       NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);

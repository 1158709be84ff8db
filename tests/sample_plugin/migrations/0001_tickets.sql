CREATE TABLE tickets (
    id      bigserial PRIMARY KEY,
    title   text NOT NULL,
    kind    text NOT NULL DEFAULT 'normal',
    status  text NOT NULL
);
CREATE TABLE ticket_history (
    ticket_id    bigint NOT NULL REFERENCES tickets (id),
    from_status  text,
    to_status    text NOT NULL
);

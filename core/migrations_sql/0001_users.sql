-- Users who started the tenant's bot. Telegram ids are 64-bit (Bot API: User.id).
CREATE TABLE users (
    telegram_id    bigint      PRIMARY KEY,
    first_name     text        NOT NULL DEFAULT '',
    last_name      text,
    username       text,
    language_code  text,
    phone          text,
    blocked        boolean     NOT NULL DEFAULT false,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now()
);

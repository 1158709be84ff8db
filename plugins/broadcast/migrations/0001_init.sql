-- Broadcast plugin: subscribers, campaigns and one delivery row per recipient.
-- Runs with search_path = the tenant schema. Times are timestamptz (UTC).

-- Who receives campaigns. Telegram user ids are 64-bit (Bot API: User.id).
CREATE TABLE broadcast_subscribers (
    user_id        bigint      PRIMARY KEY,
    status         text        NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'unsubscribed', 'blocked')),
    language_code  text        CHECK (length(language_code) <= 35),
    first_name     text        NOT NULL DEFAULT '' CHECK (length(first_name) <= 256),
    username       text        CHECK (length(username) <= 64),
    source         text        NOT NULL CHECK (source IN ('start', 'import', 'api')),
    subscribed_at  timestamptz NOT NULL DEFAULT now(),
    -- Why and when the subscriber left: stop, button, blocked (403), chat_not_found (400).
    left_reason    text,
    left_detail    text        NOT NULL DEFAULT '',
    left_at        timestamptz,
    CHECK ((status = 'active') = (left_at IS NULL))
);
CREATE INDEX broadcast_subscribers_language_idx ON broadcast_subscribers (language_code)
    WHERE status = 'active';

-- A campaign: what is sent (content), to whom (audience), and where it stands.
CREATE TABLE broadcast_campaigns (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status             text        NOT NULL CHECK (status IN
                           ('scheduled', 'running', 'paused', 'done', 'cancelled')),
    audience           jsonb       NOT NULL,
    content            jsonb       NOT NULL,
    total              integer     NOT NULL DEFAULT 0,
    created_by         bigint,                -- Telegram user id; NULL for API keys
    created_via        text        NOT NULL CHECK (created_via IN ('bot', 'api')),
    scheduled_at       timestamptz,
    started_at         timestamptz,
    finished_at        timestamptz,
    -- The admin's status message, edited with the progress (bot campaigns).
    status_chat_id     bigint,
    status_message_id  bigint,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX broadcast_campaigns_active_idx ON broadcast_campaigns (status)
    WHERE status IN ('scheduled', 'running');

-- One row per recipient of a campaign: the unique key is what makes a second
-- send to the same chat impossible, across crashes and runtimes. A row is
-- claimed (claimed_by, claim_expires_at) by one runner with FOR UPDATE SKIP
-- LOCKED, set to 'sending' in its own committed statement right before the
-- Bot API call and to its outcome after it. A 'sending' row whose runner died
-- becomes 'unknown' and is not sent again unless an admin asks.
CREATE TABLE broadcast_deliveries (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id       bigint      NOT NULL REFERENCES broadcast_campaigns (id) ON DELETE CASCADE,
    chat_id           bigint      NOT NULL,
    status            text        NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'sending', 'sent', 'failed', 'blocked', 'unknown', 'cancelled')),
    attempts          smallint    NOT NULL DEFAULT 0,
    claimed_by        text,
    claim_expires_at  timestamptz,
    sending_at        timestamptz,
    finished_at       timestamptz,
    message_id        bigint,               -- Bot API MessageId of the copy
    error_code        integer,              -- Bot API error_code (400, 403, 5xx)
    error             text        NOT NULL DEFAULT '',
    UNIQUE (campaign_id, chat_id)
);
CREATE INDEX broadcast_deliveries_pending_idx ON broadcast_deliveries (campaign_id, id)
    WHERE status = 'pending';
CREATE INDEX broadcast_deliveries_status_idx ON broadcast_deliveries (campaign_id, status);

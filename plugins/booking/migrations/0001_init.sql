-- Booking plugin: resources, services, bookings, the occupancy ledger,
-- blocked slots, status history and feedback. Runs with search_path set to
-- the tenant schema. The CHECK constraint on bookings.status is kept by the
-- core from the tenant's status machine, so none is declared here.

-- Tables (kind: tables) and staff (kind: services), mirrored from the YAML
-- on every tenant start. Ids stay small: they are encoded into hold spans.
CREATE TABLE resources (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('table', 'staff')),
    name            text NOT NULL DEFAULT '',
    seats           integer NOT NULL DEFAULT 1 CHECK (seats >= 0),
    zone            text NOT NULL DEFAULT '',
    combinable_with text[] NOT NULL DEFAULT '{}',
    active          boolean NOT NULL DEFAULT true,
    CHECK (id < 900000000)
);

CREATE TABLE services (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code             text NOT NULL UNIQUE,
    name             text NOT NULL,
    duration_minutes integer NOT NULL CHECK (duration_minutes > 0),
    price            bigint NOT NULL DEFAULT 0 CHECK (price >= 0),  -- minor units
    staff_codes      text[] NOT NULL DEFAULT '{}',
    active           boolean NOT NULL DEFAULT true
);

CREATE TABLE bookings (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status                text NOT NULL,
    user_id               bigint,            -- Telegram user id; NULL for API bookings made by staff
    customer_name         text NOT NULL CHECK (length(customer_name) BETWEEN 1 AND 100),
    phone                 text NOT NULL CHECK (length(phone) BETWEEN 3 AND 32),
    party_size            integer NOT NULL CHECK (party_size BETWEEN 1 AND 500),
    service_code          text,
    starts_at             timestamptz NOT NULL,
    ends_at               timestamptz NOT NULL,
    buffer_before_minutes integer NOT NULL DEFAULT 0 CHECK (buffer_before_minutes >= 0),
    buffer_after_minutes  integer NOT NULL DEFAULT 0 CHECK (buffer_after_minutes >= 0),
    price                 bigint NOT NULL DEFAULT 0 CHECK (price >= 0),  -- minor units
    comment               text NOT NULL DEFAULT '',
    source                text NOT NULL CHECK (source IN ('bot', 'api', 'webapp')),
    reminded_at           timestamptz,
    feedback_requested_at timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX bookings_starts_at_idx ON bookings (starts_at);
CREATE INDEX bookings_user_idx ON bookings (user_id, starts_at);

CREATE TABLE blocked_slots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id bigint REFERENCES resources (id),   -- NULL: the whole place
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL DEFAULT '',
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

-- The occupancy ledger: one row per resource a booking (or a block) holds,
-- spanning the booking's time plus its buffers. No double booking is enforced
-- here, by PostgreSQL, without btree_gist: the resource id is encoded into the
-- range itself (resource_id * 10^10 + minutes since the epoch), so two spans
-- overlap exactly when they are on the same resource and their minutes
-- overlap, and core PostgreSQL's range GiST opclass enforces the exclusion.
-- 10^10 minutes is about 19,000 years, so resources never bleed into each
-- other; ids stay below 9 * 10^8 so the product fits in bigint.
-- floor(start)/ceil(end) can only widen a span, never hide an overlap.
CREATE TABLE resource_holds (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id     bigint NOT NULL REFERENCES resources (id),
    booking_id      bigint REFERENCES bookings (id) ON DELETE CASCADE,
    blocked_slot_id bigint REFERENCES blocked_slots (id) ON DELETE CASCADE,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    span            int8range GENERATED ALWAYS AS (int8range(
        resource_id * 10000000000 + floor(extract(epoch FROM starts_at - to_timestamp(0)) / 60)::bigint,
        resource_id * 10000000000 + ceil(extract(epoch FROM ends_at - to_timestamp(0)) / 60)::bigint
    )) STORED,
    CHECK ((booking_id IS NULL) <> (blocked_slot_id IS NULL)),
    CHECK (ends_at > starts_at),
    CONSTRAINT resource_holds_no_overlap EXCLUDE USING gist (span WITH &&) WHERE (active)
);
CREATE INDEX resource_holds_booking_idx ON resource_holds (booking_id);
CREATE INDEX resource_holds_time_idx ON resource_holds (starts_at, ends_at) WHERE active;

CREATE TABLE booking_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id  bigint NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    from_status text,                  -- NULL for the creation
    to_status   text NOT NULL,
    actor_role  text NOT NULL,         -- customer, admin, system
    actor_id    bigint,                -- Telegram user id, NULL for API keys and the system
    comment     text NOT NULL DEFAULT '',
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX booking_history_booking_idx ON booking_history (booking_id, changed_at);

CREATE TABLE feedback (
    booking_id bigint PRIMARY KEY REFERENCES bookings (id) ON DELETE CASCADE,
    user_id    bigint,
    rating     smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    text       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Shifts plugin: employees, invites, shifts with their sales, bonuses and
-- history, ranks per month, the import's sync log.
-- Runs with search_path = the tenant schema. The CHECK on shifts.status is
-- kept by the core from the tenant's status machine (statuses.shift).
-- Amounts are bigint minor units of features.shifts.currency.

CREATE TABLE employees (
    id           bigserial   PRIMARY KEY,
    -- Telegram user id; NULL until the employee joins by an invite link.
    user_id      bigint      UNIQUE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text        NOT NULL CHECK (role IN ('staff', 'manager')),
    -- Personal base pay per hour; NULL: features.shifts.hourly_rates of the role.
    hourly_rate  bigint      CHECK (hourly_rate >= 0),
    active       boolean     NOT NULL DEFAULT true,
    -- The id in the old spreadsheets (import re-runs find the row by it).
    external_id  text        UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invites (
    -- SHA-256 hex of the token in the link: the database never holds a usable link.
    token_sha256 text        PRIMARY KEY,
    employee_id  bigint      NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    created_by   bigint,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    used_by      bigint
);

CREATE TABLE shifts (
    id               bigserial   PRIMARY KEY,
    employee_id      bigint      NOT NULL REFERENCES employees (id),
    status           text        NOT NULL,
    opened_at        timestamptz NOT NULL,
    closed_at        timestamptz,
    -- The tenant-local date of opened_at: the month a shift belongs to.
    local_date       date        NOT NULL,
    worked_seconds   integer     NOT NULL DEFAULT 0 CHECK (worked_seconds >= 0),
    -- category id -> minor units ({"total": n} without categories).
    sales            jsonb       NOT NULL DEFAULT '{}',
    sales_total      bigint      NOT NULL DEFAULT 0 CHECK (sales_total >= 0),
    commission_base  bigint      NOT NULL DEFAULT 0 CHECK (commission_base >= 0),
    rate_bp          integer     NOT NULL DEFAULT 0,
    rank             text,
    base_pay         bigint      NOT NULL DEFAULT 0 CHECK (base_pay >= 0),
    commission       bigint      NOT NULL DEFAULT 0 CHECK (commission >= 0),
    bonus_total      bigint      NOT NULL DEFAULT 0 CHECK (bonus_total >= 0),
    total            bigint      NOT NULL DEFAULT 0
                     CHECK (total = base_pay + commission + bonus_total),
    currency         text        NOT NULL,
    reminded_at      timestamptz,
    external_id      text        UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
-- No two open shifts for one employee (closed_at, not the status: states are
-- the tenant's to rename).
CREATE UNIQUE INDEX shifts_one_open_idx ON shifts (employee_id) WHERE closed_at IS NULL;
CREATE INDEX shifts_employee_date_idx ON shifts (employee_id, local_date DESC);
-- The month report: one range scan over a month, filtered by status.
CREATE INDEX shifts_date_status_idx ON shifts (local_date, status) INCLUDE (employee_id);
CREATE INDEX shifts_open_idx ON shifts (opened_at) WHERE closed_at IS NULL;

CREATE TABLE shift_bonuses (
    shift_id  bigint NOT NULL REFERENCES shifts (id) ON DELETE CASCADE,
    bonus     text   NOT NULL,
    name      text   NOT NULL,
    amount    bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (shift_id, bonus)
);

CREATE TABLE shift_history (
    id           bigserial   PRIMARY KEY,
    shift_id     bigint      NOT NULL REFERENCES shifts (id) ON DELETE CASCADE,
    from_status  text,
    to_status    text        NOT NULL,
    actor_id     bigint,
    role         text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    -- A correction: field -> {"from": old, "to": new}; '{}' for status changes.
    changes      jsonb       NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shift_history_shift_idx ON shift_history (shift_id, id);

CREATE TABLE employee_ranks (
    employee_id  bigint      NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    -- First day of the month the rank is held in (tenant-local calendar).
    month        date        NOT NULL CHECK (extract(day FROM month) = 1),
    rank         text,
    -- Counted sales (minor units) or shifts of the month before.
    achieved     bigint      NOT NULL DEFAULT 0,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (employee_id, month)
);

-- One row per month whose ranks were computed: the monthly job's claim, so
-- two runtimes running it at once give one result.
CREATE TABLE rank_runs (
    month      date        PRIMARY KEY,
    employees  integer     NOT NULL,
    ran_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sync_log (
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL,
    dry_run     boolean     NOT NULL,
    files       jsonb       NOT NULL,
    -- kind -> {"new": n, "existing": n}
    counts      jsonb       NOT NULL,
    errors      integer     NOT NULL DEFAULT 0,
    ran_at      timestamptz NOT NULL DEFAULT now()
);

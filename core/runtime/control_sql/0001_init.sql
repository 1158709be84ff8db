-- The runtime's own tables, in the control schema shared by every runtime on
-- the database (TENANTRY_CONTROL_SCHEMA). Applied by core.runtime.control.

-- Which tenant id holds which schema, Redis prefix and bot. A claim is written
-- when a tenant starts and kept when it is removed (its data is kept), so no
-- other tenant id can take them until ops release it.
CREATE TABLE storage_claims (
    resource    text        NOT NULL CHECK (resource IN ('schema', 'redis_prefix', 'bot')),
    value       text        NOT NULL,
    tenant_id   text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource, value)
);
CREATE INDEX storage_claims_tenant ON storage_claims (tenant_id);

-- Every admin action and every tenant change from the tenants folder.
CREATE TABLE audit_log (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    action     text        NOT NULL,
    tenant_id  text        NOT NULL,
    outcome    text        NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    reason     text        NOT NULL DEFAULT '',
    diff       text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);

-- The last tenant file that started for each tenant id, secrets masked: the
-- base of the next change's diff, and how a restart (or another runtime
-- applying the same file) is told apart from a change.
CREATE TABLE tenant_files (
    tenant_id    text        PRIMARY KEY,
    source_hash  text        NOT NULL,
    masked_text  text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
);

-- What each tenant schema was last brought up to date with (core.storage.migrations):
-- a digest of the migrations and status machines, and the schema's oid. A
-- runtime starting thousands of tenants reads this table once and skips the
-- schemas whose digest and oid match; a dropped and re-created schema has a
-- new oid, so it is migrated again.
CREATE TABLE tenant_schema_states (
    schema_name  text        PRIMARY KEY,
    schema_oid   oid         NOT NULL,
    digest       text        NOT NULL,
    checked_at   timestamptz NOT NULL DEFAULT now()
);

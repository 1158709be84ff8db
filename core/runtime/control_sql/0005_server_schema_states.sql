-- 0004 keyed tenant_schema_states by (database_name, schema_name). Runtimes of
-- the release before it upsert there ON CONFLICT (schema_name), which that key
-- breaks while a rolling upgrade runs both releases: their tenant starts fail.
-- So the default server's schemas stay in tenant_schema_states keyed by
-- schema_name, as before 0004, and the other servers' (storage.database) have
-- a table of their own; the oid is the schema's oid on that server.
CREATE TABLE server_schema_states (
    database_name  text        NOT NULL,
    schema_name    text        NOT NULL,
    schema_oid     oid         NOT NULL,
    digest         text        NOT NULL,
    checked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (database_name, schema_name)
);
INSERT INTO server_schema_states (database_name, schema_name, schema_oid, digest, checked_at)
SELECT database_name, schema_name, schema_oid, digest, checked_at
FROM tenant_schema_states WHERE database_name <> 'default';
DELETE FROM tenant_schema_states WHERE database_name <> 'default';
ALTER TABLE tenant_schema_states DROP CONSTRAINT tenant_schema_states_pkey;
ALTER TABLE tenant_schema_states DROP COLUMN database_name;
ALTER TABLE tenant_schema_states ADD PRIMARY KEY (schema_name);

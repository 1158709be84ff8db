-- Tenants may be placed on several PostgreSQL servers (storage.database), and
-- one schema name may exist on each: a schema's state is keyed by its server
-- too. The oid is the schema's oid on that server. Rows written before are
-- the default server's (TENANTRY_DATABASE_URL).
ALTER TABLE tenant_schema_states ADD COLUMN database_name text NOT NULL DEFAULT 'default';
ALTER TABLE tenant_schema_states DROP CONSTRAINT tenant_schema_states_pkey;
ALTER TABLE tenant_schema_states ADD PRIMARY KEY (database_name, schema_name);

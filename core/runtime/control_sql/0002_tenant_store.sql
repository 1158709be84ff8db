-- The tenant store: the one source of truth for tenant files, shared by every
-- runtime on the database (core.runtime.store). A change is a new version;
-- runtimes hear of it by NOTIFY on the channel "<control schema>_tenants"
-- and re-read the heads periodically, so a missed notification heals.

-- The current version of each tenant id (a removed tenant keeps its row, deleted).
CREATE TABLE tenant_documents (
    tenant_id   text        PRIMARY KEY,
    version     integer     NOT NULL CHECK (version > 0),
    text        text        NOT NULL,
    checksum    text        NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    changed_by  text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

-- Every version ever stored, removals included (text '' and action 'remove').
CREATE TABLE tenant_document_versions (
    tenant_id   text        NOT NULL,
    version     integer     NOT NULL,
    action      text        NOT NULL CHECK (action IN ('put', 'remove', 'rollback')),
    text        text        NOT NULL,
    checksum    text        NOT NULL,
    changed_by  text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);

-- What each tenants folder last exchanged with the store, per file: how a
-- runtime tells a file edited by hand (push it) from a file that is merely
-- behind the store (rewrite it), and a deleted file from one never seen.
-- folder is "<host>:<absolute path>" of the runtime's tenants folder.
CREATE TABLE tenant_folder_files (
    folder      text NOT NULL,
    file_name   text NOT NULL,
    tenant_id   text NOT NULL,
    checksum    text NOT NULL,
    PRIMARY KEY (folder, file_name)
);

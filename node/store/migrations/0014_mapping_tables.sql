-- 0014: mapping tables installed on the node and their approval records (C3, H13,
-- docs/adr/0207).
-- Invariants:
--   * one row per installed table content (table_sha256 = MappingTable.content_hash as 32
--     raw bytes); content is the table document exactly as verified at install (hash,
--     signatures, invariants), and it is verified again each time the node loads it;
--   * approval is a serialized keys Envelope of a MappingApproval (批准或备案), opened
--     against the node's authorities at every load; NULL = installed without approval:
--     listed and evaluated, never issued with;
--   * origin is 'file' or 'peer:<region>' (ListMappings of that peer);
--   * a retired table stays for audit (retired_at set) and is never used again; rows are
--     never deleted;
--   * mapping_generation has one row; every install or retire adds 1 in the same
--     transaction, so a running node re-reads the tables when the number changed.

CREATE TABLE mapping_tables (
    table_sha256          BLOB PRIMARY KEY CHECK (length(table_sha256) = 32),
    mapping_id            TEXT NOT NULL,
    mapping_version       TEXT NOT NULL,
    method                TEXT NOT NULL CHECK (method IN ('agreement', 'anchored', 'equipercentile')),
    source_scheme         TEXT NOT NULL,   -- id@version
    target_scheme         TEXT NOT NULL,   -- id@version
    content               BLOB NOT NULL,
    approval              BLOB,
    origin                TEXT NOT NULL CHECK (origin = 'file' OR origin GLOB 'peer:?*'),
    installed_at          TEXT NOT NULL,
    retired_at            TEXT
) WITHOUT ROWID;

CREATE INDEX mapping_tables_by_id ON mapping_tables (mapping_id, mapping_version);

CREATE TABLE mapping_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL CHECK (generation >= 0)
);

INSERT INTO mapping_generation (id, generation) VALUES (1, 0);

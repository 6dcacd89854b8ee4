-- 0002: source batches, collection consents, citizen consents, the transparency log,
-- status-list entries and issued attestations (owner: node exchange, docs/adr/0300-0399).
-- Invariants:
--   * nothing here holds an ID number: subjects are referenced by subject_key only;
--   * a source batch row is written in the same transaction as its records, so a
--     committed batch id means every one of its records is stored (idempotency);
--   * log_entries is append-only, idx = 0, 1, 2, … without gaps; leaf = the exact
--     serialised LogEntry bytes that were hashed;
--   * status_entries.idx is the attestation's index in the region's status list.

CREATE TABLE source_batches (
    batch_id     TEXT PRIMARY KEY,
    submitted_by TEXT NOT NULL,
    records      INTEGER NOT NULL,
    sha256       BLOB NOT NULL,
    committed_at TEXT NOT NULL
) WITHOUT ROWID;

-- Written collection consent for non-public (market, agency) information (H7, N4).
CREATE TABLE collection_consents (
    consent_ref     TEXT PRIMARY KEY,
    subject_key     BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    collector       TEXT NOT NULL,
    stated_use      TEXT NOT NULL,
    document_sha256 BLOB NOT NULL CHECK (length(document_sha256) = 32),
    signed_on       TEXT NOT NULL,
    recorded_by     TEXT NOT NULL,
    recorded_at     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX collection_consents_by_subject ON collection_consents (subject_key, collector);

CREATE TABLE record_marks (
    record_id    TEXT NOT NULL,
    status       TEXT NOT NULL,
    repair_route TEXT NOT NULL DEFAULT '',
    note         TEXT NOT NULL DEFAULT '',
    marked_by    TEXT NOT NULL,
    marked_at    TEXT NOT NULL
);
CREATE INDEX record_marks_by_record ON record_marks (record_id);

CREATE TABLE consents (
    consent_id      TEXT PRIMARY KEY,
    subject_key     BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    audience        TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    scope           INTEGER NOT NULL,
    not_before      INTEGER NOT NULL,
    not_after       INTEGER NOT NULL,
    max_uses        INTEGER NOT NULL CHECK (max_uses > 0),
    uses            INTEGER NOT NULL DEFAULT 0,
    binding         BLOB NOT NULL CHECK (length(binding) = 32),
    grant_payload   BLOB NOT NULL,
    grant_sha256    BLOB NOT NULL,
    granted_at      INTEGER NOT NULL,
    withdrawn_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX consents_by_subject ON consents (subject_key);

CREATE TABLE log_entries (
    idx         INTEGER PRIMARY KEY,
    subject_key BLOB,   -- for the citizen's own query log; NULL when unknown
    kind        TEXT NOT NULL,
    leaf        BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX log_entries_by_subject ON log_entries (subject_key);

CREATE TABLE status_entries (
    idx            INTEGER PRIMARY KEY,
    attestation_id TEXT NOT NULL UNIQUE,
    subject_key    BLOB NOT NULL,
    consent_id     TEXT NOT NULL,
    status         INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 3)),
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX status_entries_by_subject ON status_entries (subject_key);
CREATE INDEX status_entries_by_consent ON status_entries (consent_id);

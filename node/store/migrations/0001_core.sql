-- 0001: core tables of a region node.
-- Invariants:
--   * a subject is keyed by subject_key = HMAC-SHA256(region secret, normalised ID number);
--     the ID number itself is stored only sealed (AES-GCM, aad = subject_key), never plain;
--   * dates are ISO-8601 text (YYYY-MM-DD), timestamps ISO-8601 UTC text;
--   * record values are validated at intake (scoring.validate_record); the records table
--     carries no CHECK constraints because it is the hot bulk-insert path (they cost ~40%);
--   * records and snapshots are clustered by subject_key (WITHOUT ROWID), so a monthly
--     run reads and writes each subject-key range sequentially.

CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE subjects (
    subject_key         BLOB PRIMARY KEY CHECK (length(subject_key) = 32),
    birth_date          TEXT NOT NULL,
    full_civil_capacity INTEGER NOT NULL DEFAULT 1 CHECK (full_civil_capacity IN (0, 1)),
    id_sealed           BLOB NOT NULL,
    registered_at       TEXT NOT NULL,
    deregistered_at     TEXT
) WITHOUT ROWID;

CREATE TABLE residences (
    subject_key BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    since       TEXT NOT NULL,
    PRIMARY KEY (subject_key, kind, since)
) WITHOUT ROWID;

CREATE TABLE records (
    subject_key    BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    record_id      TEXT NOT NULL,
    source         TEXT NOT NULL,
    category       TEXT NOT NULL,
    polarity       TEXT NOT NULL,
    act_id         TEXT NOT NULL,
    recognised_on  TEXT NOT NULL,
    valid_until    TEXT,
    level          TEXT,
    severity       TEXT,
    legal_document TEXT,
    status         TEXT NOT NULL DEFAULT 'active',   -- active | masked | repaired | revoked
    provenance     TEXT NOT NULL DEFAULT 'public',   -- public | market | personal_verified
    flags          TEXT NOT NULL DEFAULT '',   -- sorted, comma-separated
    batch_id       TEXT NOT NULL,
    submitted_at   TEXT NOT NULL,
    PRIMARY KEY (subject_key, record_id)
) WITHOUT ROWID;

CREATE UNIQUE INDEX records_by_id ON records (record_id);
CREATE INDEX records_by_batch ON records (batch_id);

-- One monthly recomputation per (period, scheme id, scheme version).  Each chunk of
-- subjects commits its snapshots together with its row in snapshot_run_chunks, so an
-- interrupted run holds complete chunks only and resumes where it stopped.
CREATE TABLE snapshot_runs (
    run_id         INTEGER PRIMARY KEY,
    period         TEXT NOT NULL CHECK (period GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]'),
    scheme_id      TEXT NOT NULL,
    scheme_version TEXT NOT NULL,
    as_of          TEXT NOT NULL,
    chunks         INTEGER NOT NULL CHECK (chunks > 0),
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    UNIQUE (period, scheme_id, scheme_version)
);

CREATE TABLE snapshot_run_chunks (
    run_id   INTEGER NOT NULL REFERENCES snapshot_runs (run_id) ON DELETE CASCADE,
    chunk    INTEGER NOT NULL,
    subjects INTEGER NOT NULL,
    eligible INTEGER NOT NULL,
    PRIMARY KEY (run_id, chunk)
) WITHOUT ROWID;

CREATE TABLE snapshots (
    run_id      INTEGER NOT NULL REFERENCES snapshot_runs (run_id) ON DELETE CASCADE,
    subject_key BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    eligible    INTEGER NOT NULL CHECK (eligible IN (0, 1)),
    score       INTEGER,
    grade       TEXT,
    reason      TEXT,
    CHECK ((eligible = 1) = (score IS NOT NULL AND grade IS NOT NULL)),
    PRIMARY KEY (run_id, subject_key)
) WITHOUT ROWID;

-- Child key of the subjects foreign key (deletion on deregistration) and a citizen's history.
CREATE INDEX snapshots_by_subject ON snapshots (subject_key);

CREATE VIEW monthly_snapshots AS
SELECT r.period, r.scheme_id, r.scheme_version, s.subject_key, s.eligible, s.score, s.grade,
       s.reason
FROM snapshots AS s JOIN snapshot_runs AS r USING (run_id);

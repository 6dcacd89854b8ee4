-- PostgreSQL twin of ../0009_per_source_ids.sql (same tables and columns; docs/adr/0700).
-- 0009: batch ids and record ids belong to the department that chose them (docs/adr/0320).
--
-- The schema it changes: source_batches was keyed by batch_id and records_by_id was UNIQUE on record_id,
-- so one department's natural id ("2026-11-23") blocked another's, a department replaying
-- another's batch was told "replayed", and record lookups could tell "another
-- department's record" from "no record".
-- Invariants:
--   * source_batches is keyed by (submitted_by, batch_id): submitted_by is the certificate
--     identity of the department that committed the batch;
--   * every record row carries submitted_by, the department that filed it (its batch's
--     submitter; for a verified supplement, the verifying department); record ids are
--     unique per (submitted_by, record_id), and every lookup by record id names the
--     department: a source's own (MarkRecord), a citizen's own (objections), an
--     objection's department (its effects);
--   * record_marks carries the submitted_by of the record it marks.
-- The key is (subject_key, record_id, submitted_by): a subject's records still read in
-- record-id order straight from the key (the monthly run's ORDER BY needs no sort).
-- The key columns come first (SQLite 3.40's integrity_check misreads NOT NULL columns
-- of a WITHOUT ROWID table whose key column follows a nullable one; backups run it).
-- Existing rows are kept: a record's submitted_by is its batch's submitter, or its
-- source when no batch row names it (rows written before batches were kept); ids were
-- globally unique before, so the new keys hold for every existing row.

CREATE TABLE source_batches_0009 (
    submitted_by TEXT NOT NULL,
    batch_id     TEXT NOT NULL,
    records      BIGINT NOT NULL,
    sha256       BYTEA NOT NULL,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (submitted_by, batch_id)
);

CREATE TABLE records_0009 (
    subject_key    BYTEA NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    record_id      TEXT NOT NULL,
    submitted_by   TEXT NOT NULL,   -- certificate identity of the department that filed it
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
    share_due      TEXT,
    PRIMARY KEY (subject_key, record_id, submitted_by)
);

INSERT INTO records_0009 (subject_key, record_id, source, category, polarity, act_id,
                          recognised_on, valid_until, level, severity, legal_document, status,
                          provenance, flags, batch_id, submitted_at, share_due, submitted_by)
    SELECT r.subject_key, r.record_id, r.source, r.category, r.polarity, r.act_id,
           r.recognised_on, r.valid_until, r.level, r.severity, r.legal_document, r.status,
           r.provenance, r.flags, r.batch_id, r.submitted_at, r.share_due,
           coalesce(b.submitted_by, r.source)
    FROM records AS r LEFT JOIN source_batches AS b USING (batch_id);

INSERT INTO source_batches_0009 (submitted_by, batch_id, records, sha256, committed_at)
    SELECT submitted_by, batch_id, records, sha256, committed_at FROM source_batches;

ALTER TABLE record_marks ADD COLUMN submitted_by TEXT;
UPDATE record_marks SET submitted_by = (
    SELECT r.submitted_by FROM records_0009 AS r WHERE r.record_id = record_marks.record_id
);
DROP INDEX record_marks_by_record;
CREATE INDEX record_marks_by_record ON record_marks (submitted_by, record_id);

DROP TABLE records;
ALTER TABLE records_0009 RENAME TO records;
CREATE UNIQUE INDEX records_by_id ON records (submitted_by, record_id);
CREATE INDEX records_by_batch ON records (batch_id);

DROP TABLE source_batches;
ALTER TABLE source_batches_0009 RENAME TO source_batches;

-- Fewer index pages per attestation (docs/adr/0316).
--
-- status_entries had a UNIQUE index on the random attestation id and an index on
-- consent_id: two more B-trees written at a random place by every attestation
-- (about a third of a group's COMMIT). Nothing looks an entry up by attestation
-- id (status is by idx; ids are 128 random bits from the OS, a collision is not
-- a case to handle), and a withdrawal finds its consent's entries through the
-- subject's index (a subject has few entries). The table is rebuilt without
-- both; idx values, rows and the subject index are kept.
CREATE TABLE status_entries_0007 (
    idx            INTEGER PRIMARY KEY,
    attestation_id TEXT NOT NULL,
    subject_key    BLOB NOT NULL,
    consent_id     TEXT NOT NULL,
    status         INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 3)),
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
INSERT INTO status_entries_0007 (idx, attestation_id, subject_key, consent_id, status,
                                 issued_at, expires_at)
    SELECT idx, attestation_id, subject_key, consent_id, status, issued_at, expires_at
    FROM status_entries;
DROP TABLE status_entries;
ALTER TABLE status_entries_0007 RENAME TO status_entries;
CREATE INDEX status_entries_by_subject ON status_entries (subject_key);

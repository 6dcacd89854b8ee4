-- PostgreSQL twin of ../0011_citizen_rights.sql (same tables and columns; docs/adr/0700).
-- 0011: the citizen's remaining rights (N3, N4, N21, N22, N23; docs/adr/0509).
-- (0010 is left to the population registry.)
-- Invariants:
--   * nothing here holds an ID number; rows name a subject by subject_key only, so
--     deregistration deletes them (every table with a subject_key column is erased);
--   * a score objection is an `objections` row with about_score = 1, record_id = '',
--     source = the node's own region (the operator answers it) and `period` (YYYY-MM)
--     naming the published score it disputes (N21: "the score itself as well");
--   * a repair application is routed to the department that filed the record
--     (`submitted_by`), which alone lists and decides it; `due` is the last working
--     day of its decision step, `escalated` is set once when it passed (N22);
--   * an opt_outs row means "do not score me" (N3: voluntary): the records stay (the
--     law requires the department's data to be kept), nothing is computed, published or
--     attested while it exists; deleting it is opting back in.

ALTER TABLE objections ADD COLUMN about_score BIGINT NOT NULL DEFAULT 0
    CHECK (about_score IN (0, 1));
ALTER TABLE objections ADD COLUMN period TEXT NOT NULL DEFAULT '';

CREATE TABLE repair_applications (
    application_id TEXT PRIMARY KEY,
    subject_key    BYTEA NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    submitted_by   TEXT NOT NULL,   -- certificate identity of the department that filed the record
    record_id      TEXT NOT NULL,
    route          TEXT NOT NULL CHECK (route IN
                       ('commitment', 'rectification', 'verification', 'credit_report', 'charity')),
    statement      TEXT NOT NULL DEFAULT '',
    evidence_sha256 BYTEA CHECK (evidence_sha256 IS NULL OR length(evidence_sha256) = 32),
    state          TEXT NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'granted', 'refused')),
    due            TEXT NOT NULL,
    escalated      BIGINT NOT NULL DEFAULT 0 CHECK (escalated IN (0, 1)),
    reason         TEXT NOT NULL DEFAULT '',
    filed_at       TEXT NOT NULL,
    decided_at     TEXT
);
CREATE INDEX repair_applications_by_subject ON repair_applications (subject_key);
CREATE INDEX repair_applications_by_department ON repair_applications (submitted_by, state);
CREATE INDEX repair_applications_open ON repair_applications (state, due);

CREATE TABLE opt_outs (
    subject_key   BYTEA PRIMARY KEY REFERENCES subjects (subject_key) ON DELETE CASCADE,
    opted_out_at  TEXT NOT NULL
);

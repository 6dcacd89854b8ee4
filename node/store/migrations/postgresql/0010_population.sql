-- PostgreSQL twin of ../0010_population.sql (same tables and columns; docs/adr/0700).
-- 0010: the population registry (H1, N1; docs/adr/0508).
--
-- The schema it changes: a subject existed only as a side effect of a record batch, and nothing
-- could end a residence, record a death or withdraw a consent because a person left.
-- Invariants:
--   * subjects is the registry of who exists; a population authority adds people
--     with residence facts and no records (SourceService.SubmitResidenceFacts);
--   * a residence row ends with ended_on (move-out, permit expiry); NULL = current.
--     Readers count a residence on day D iff since <= D AND (ended_on IS NULL OR
--     ended_on > D); the row is kept (the law's record of where a person lived);
--   * subjects.died_on: a dead person leaves the monthly run from that day and is no
--     longer served (SUBJECT_DECEASED); the row and records stay (retention);
--   * population_facts keeps every accepted fact (who filed it, in which batch) as
--     the authority's trail; it holds the subject key only, never the ID number;
--   * consents.withdrawn_reason: why a consent ended when the citizen did not end it
--     (SUBJECT_DECEASED, SUBJECT_NOT_RESIDENT, SUBJECT_NOT_ELIGIBLE); NULL = by the
--     citizen.
-- Fact batches share source_batches with record batches (records = facts accepted):
-- one id namespace per department, same idempotency rule.

ALTER TABLE residences ADD COLUMN ended_on TEXT;
ALTER TABLE subjects ADD COLUMN died_on TEXT;
ALTER TABLE consents ADD COLUMN withdrawn_reason TEXT;

CREATE TABLE population_facts (
    submitted_by   TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    subject_key    BYTEA NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    residence_kind TEXT NOT NULL DEFAULT '',
    on_date        TEXT NOT NULL,
    PRIMARY KEY (submitted_by, batch_id, seq)
);
CREATE INDEX population_facts_by_subject ON population_facts (subject_key);

-- PostgreSQL twin of ../0008_refusal_marks.sql (same tables and columns; docs/adr/0700).
-- 0008: bounded refusal logging (docs/adr/0319).
-- One row per (consent, requester, reason) that was refused at least once: when the
-- last request_refused leaf for it was appended and how many refusals since then got
-- no leaf of their own (they are counted in the next one). Read and written only
-- inside the refusing write unit, so every process serving the database agrees.
-- Invariants: no subject key, no ID number; a row goes with its consent (CASCADE,
-- e.g. on deregistration); one row per key, so the table is bounded by consents.
CREATE TABLE refusal_marks (
    consent_id TEXT NOT NULL REFERENCES consents (consent_id) ON DELETE CASCADE,
    requester  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    logged_at  BIGINT NOT NULL,  -- timestamp of the last leaf appended for this key
    unlogged   BIGINT NOT NULL DEFAULT 0 CHECK (unlogged >= 0),
    PRIMARY KEY (consent_id, requester, reason)
);

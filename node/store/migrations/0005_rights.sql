-- 0005: citizen rights and governance (issue 7; owner: rights, docs/adr/0500-0509).
-- Invariants:
--   * nothing here holds an ID number; rows name a subject by subject_key only, so
--     deregistration deletes them by that key (every table with a subject_key column);
--   * an objection row holds the pure state machine's state (scoring.Objection) as JSON
--     in `state_json`; `state`, `waiting_for` and `due` mirror it for queue queries;
--   * deregistrations keeps only a tombstone = HMAC(storage secret, "huxin-deregistered"
--     || subject_key): nobody can link it to a person without the region secret AND the ID;
--   * records.share_due is the last working day (N7: 15 working days after formation) a
--     source should have shared the record by; NULL when it was on time.

CREATE TABLE objections (
    objection_id   TEXT PRIMARY KEY,
    subject_key    BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    record_id      TEXT NOT NULL,
    source         TEXT NOT NULL,     -- certificate identity of the department asked to verify
    about_handling INTEGER NOT NULL DEFAULT 0 CHECK (about_handling IN (0, 1)),
    reason         TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    waiting_for    TEXT NOT NULL,
    due            TEXT,
    state_json     TEXT NOT NULL,
    deadlines_json TEXT NOT NULL DEFAULT '{}',
    filed_at       TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX objections_by_subject ON objections (subject_key);
CREATE INDEX objections_open ON objections (state, due);
CREATE INDEX objections_by_source ON objections (source, state);

CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    subject_key BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX notifications_by_subject ON notifications (subject_key, id);

-- The grade recomputed at once after a rights event (H16: updated promptly).
CREATE TABLE current_grades (
    subject_key    BLOB PRIMARY KEY REFERENCES subjects (subject_key) ON DELETE CASCADE,
    scheme_version TEXT NOT NULL,
    score          INTEGER,
    grade          TEXT,
    cause          TEXT NOT NULL,
    computed_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE supplements (
    supplement_id  TEXT PRIMARY KEY,
    subject_key    BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    category       TEXT NOT NULL,
    level          TEXT,
    act_id         TEXT NOT NULL,
    recognised_on  TEXT NOT NULL,
    verifier       TEXT NOT NULL,
    proof_sha256   BLOB NOT NULL CHECK (length(proof_sha256) = 32),
    description    TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'verified', 'rejected')),
    reason         TEXT NOT NULL DEFAULT '',
    record_id      TEXT,
    submitted_at   TEXT NOT NULL,
    decided_at     TEXT
) WITHOUT ROWID;
CREATE INDEX supplements_by_subject ON supplements (subject_key);
CREATE INDEX supplements_by_verifier ON supplements (verifier, state);

CREATE TABLE deregistrations (
    tombstone        BLOB PRIMARY KEY CHECK (length(tombstone) = 32),
    deregistered_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Model rollout (H11, N12): one row per scheme id; the state is scoring.Rollout as JSON.
CREATE TABLE rollouts (
    scheme_id      TEXT PRIMARY KEY,
    state_json     TEXT NOT NULL,
    candidate_toml TEXT,
    shadow_json    TEXT,
    updated_at     TEXT NOT NULL
) WITHOUT ROWID;

ALTER TABLE records ADD COLUMN share_due TEXT;

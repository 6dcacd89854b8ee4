-- 0013: published monthly grades (H3), their corrections after rights events (H16) and the
-- node's own monthly schedule (docs/adr/0514).
-- Invariants:
--   * the published grade of a person for a month is the newest published_corrections row
--     of (run, person) if there is one, else the run's snapshots row; rows are only ever
--     appended, so the run's original and every correction stay for audit;
--   * snapshot_runs.records_through: the run scored the records submitted up to and
--     including that instant (the node's clock, ISO 8601 as records.submitted_at); NULL
--     for a run made without one (benchmarks), explained from every stored record;
--   * a correction keeps the explained report it was computed with (a serialised
--     huxin.scoring.v1.ScoreResult), so the citizen's report explains exactly the
--     published numbers; nothing here holds an ID number;
--   * monthly_runs: one row per (period, scheme id, scheme version) the node's scheduler
--     ran; 'finished' means scored and signed, so no restart runs that month again.

ALTER TABLE snapshot_runs ADD COLUMN records_through TEXT;

CREATE TABLE published_corrections (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES snapshot_runs (run_id) ON DELETE CASCADE,
    subject_key  BLOB NOT NULL REFERENCES subjects (subject_key) ON DELETE CASCADE,
    eligible     INTEGER NOT NULL CHECK (eligible IN (0, 1)),
    score        INTEGER,
    grade        TEXT,
    reason       TEXT,
    report       BLOB NOT NULL,
    cause        TEXT NOT NULL,
    corrected_at TEXT NOT NULL,
    CHECK ((eligible = 1) = (score IS NOT NULL AND grade IS NOT NULL))
);

-- The newest correction of (person, run) is one index seek; also the subjects FK's child key.
CREATE INDEX published_corrections_by_subject ON published_corrections (subject_key, run_id, id);
CREATE INDEX published_corrections_by_run ON published_corrections (run_id);

CREATE TABLE monthly_runs (
    period         TEXT NOT NULL CHECK (period GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]'),
    scheme_id      TEXT NOT NULL,
    scheme_version TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'finished', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 1 CHECK (attempts > 0),
    people         INTEGER NOT NULL DEFAULT 0,   -- to be scored, counted when it started
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    failed_at      TEXT,
    error          TEXT NOT NULL DEFAULT '',     -- a stable reason code, never personal data
    PRIMARY KEY (period, scheme_id, scheme_version)
) WITHOUT ROWID;

-- 0003: the region's outbox (what is pushed to the provincial hub, H13) and the signed
-- Merkle batches of monthly snapshots (H3).  Owner: hub (docs/adr/0400-0409).
-- Invariants:
--   * outbox is append-only: seq = 1, 2, 3, ... without gaps (AUTOINCREMENT; an insert
--     rolled back with its transaction leaves no gap); rows are never updated or deleted
--     (triggers refuse it); event_id is the idempotency key pushed as the batch id;
--   * an outbox payload never holds an ID number: deregistrations carry the province
--     pseudonym HMAC(province key, ID), status lists are signed envelopes, snapshot
--     batches are referenced by batch_id;
--   * a snapshot batch row, its leaves and its outbox event commit in ONE transaction;
--     leaf idx = 0..leaves-1; leaf_hash = SHA-256(0x00 || PAE(payload_type, payload))
--     is kept so that a leaf deleted on deregistration (payload and subject_key set to
--     NULL) still lets the signed root verify.

CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('snapshot_batch', 'status_list', 'deregistration')),
    event_id   TEXT NOT NULL UNIQUE,
    payload    BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TRIGGER outbox_append_only_update BEFORE UPDATE ON outbox
BEGIN
    SELECT RAISE(ABORT, 'outbox is append-only');
END;

CREATE TRIGGER outbox_append_only_delete BEFORE DELETE ON outbox
BEGIN
    SELECT RAISE(ABORT, 'outbox is append-only');
END;

CREATE TABLE snapshot_batches (
    batch_id       TEXT PRIMARY KEY,
    run_id         INTEGER NOT NULL,
    period         TEXT NOT NULL,
    scheme_id      TEXT NOT NULL,
    scheme_version TEXT NOT NULL,
    number         INTEGER NOT NULL,
    payload_type   TEXT NOT NULL,
    leaves         INTEGER NOT NULL CHECK (leaves > 0),
    root_hash      BLOB NOT NULL CHECK (length(root_hash) = 32),
    checkpoint     BLOB NOT NULL,        -- serialised Envelope of the batch Checkpoint
    signed_at      INTEGER NOT NULL,
    UNIQUE (run_id, number)
) WITHOUT ROWID;

CREATE TABLE snapshot_leaves (
    batch_id    TEXT NOT NULL REFERENCES snapshot_batches (batch_id),
    idx         INTEGER NOT NULL,
    subject_key BLOB,                    -- NULL once deleted (deregistration)
    leaf_hash   BLOB NOT NULL,
    payload     BLOB,                    -- serialised Attestation; NULL once deleted
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;

CREATE INDEX snapshot_leaves_by_subject ON snapshot_leaves (subject_key);

-- Push client state per hub (region side): the hub's acknowledged cursor as last seen,
-- receipts signed by the hub (verified when the hub key is configured), the last log
-- checkpoint the hub co-signed, and the last error (read by `huxin status`).
CREATE TABLE push_state (
    hub          TEXT PRIMARY KEY,
    cursor       INTEGER NOT NULL DEFAULT 0,
    last_push_at INTEGER,
    last_error   TEXT NOT NULL DEFAULT '',
    failures     INTEGER NOT NULL DEFAULT 0,
    witnessed    BLOB                            -- co-signed log checkpoint Envelope
) WITHOUT ROWID;

CREATE TABLE push_receipts (
    hub      TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    receipt  BLOB NOT NULL,                      -- Envelope of a Receipt signed by the hub
    verified INTEGER NOT NULL CHECK (verified IN (0, 1)),
    PRIMARY KEY (hub, seq)
) WITHOUT ROWID;

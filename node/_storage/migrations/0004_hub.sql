-- 0004: the provincial hub (role = "hub"): region registry, signed trust lists, pushed
-- events with their signed receipts, snapshot batches and leaves, status lists, and
-- witnessed transparency-log checkpoints.  Owner: hub (docs/adr/0400-0409).
-- Invariants:
--   * a region may push only when it is in hub_regions (H17);
--   * per region, hub_events.seq = 1 .. hub_cursors.cursor without gaps: an event, what
--     it stores (batch + leaves, status list, deletions) and the cursor advance commit in
--     ONE transaction, so an acknowledged event is stored exactly once;
--   * hub_leaves hold verified attestation payloads under the province pseudonym only;
--     a deregistration deletes that region's leaves of the pseudonym;
--   * hub_trust_lists.version strictly increases; the newest row is what GetTrustList serves;
--   * hub_witness_evidence keeps both conflicting checkpoints (a split view) forever.

CREATE TABLE hub_regions (
    region          TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    root_public_key BLOB NOT NULL CHECK (length(root_public_key) = 32),
    key_set         BLOB NOT NULL,                 -- KeySet Envelope signed by the root key
    schemes         TEXT NOT NULL DEFAULT '',      -- comma-separated scheme_id@version
    endpoints       TEXT NOT NULL DEFAULT '',      -- comma-separated host:port
    tls_sha256      BLOB NOT NULL DEFAULT x'',     -- concatenated SHA-256 of DER certificates
    domestic        INTEGER NOT NULL DEFAULT 1 CHECK (domestic IN (0, 1)),
    registered_at   INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE hub_trust_lists (
    version         INTEGER PRIMARY KEY,
    envelope        BLOB NOT NULL,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    registry_sha256 BLOB NOT NULL
);

CREATE TABLE hub_cursors (
    region               TEXT PRIMARY KEY REFERENCES hub_regions (region),
    cursor               INTEGER NOT NULL DEFAULT 0,
    witnessed_size       INTEGER NOT NULL DEFAULT 0,
    witnessed_root       BLOB,
    witnessed_checkpoint BLOB,                      -- co-signed Envelope
    last_push_at         INTEGER
) WITHOUT ROWID;

CREATE TABLE hub_events (
    region         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    event_id       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    content_sha256 BLOB NOT NULL,
    leaves         INTEGER NOT NULL DEFAULT 0,
    receipt        BLOB NOT NULL,                   -- Envelope of a Receipt signed by the hub
    received_at    INTEGER NOT NULL,
    PRIMARY KEY (region, seq),
    UNIQUE (region, event_id)
) WITHOUT ROWID;

CREATE TABLE hub_batches (
    id             INTEGER PRIMARY KEY,
    region         TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    period         TEXT NOT NULL,
    scheme_id      TEXT NOT NULL,
    scheme_version TEXT NOT NULL,
    payload_type   TEXT NOT NULL,
    leaves         INTEGER NOT NULL,
    root_hash      BLOB NOT NULL,
    checkpoint     BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    UNIQUE (region, batch_id)
);

CREATE TABLE hub_leaves (
    batch     INTEGER NOT NULL REFERENCES hub_batches (id),
    idx       INTEGER NOT NULL,
    pseudonym BLOB NOT NULL,
    payload   BLOB NOT NULL,
    PRIMARY KEY (batch, idx)
) WITHOUT ROWID;

CREATE INDEX hub_leaves_by_pseudonym ON hub_leaves (pseudonym);

CREATE TABLE hub_status_lists (
    region      TEXT NOT NULL,
    list_id     TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    envelope    BLOB NOT NULL,
    PRIMARY KEY (region, list_id)
) WITHOUT ROWID;

CREATE TABLE hub_witness_evidence (
    id          INTEGER PRIMARY KEY,
    region      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    previous    BLOB,                               -- the checkpoint witnessed before
    presented   BLOB NOT NULL,                      -- the conflicting checkpoint
    proof       BLOB NOT NULL,                      -- serialised ConsistencyProof as sent
    detected_at INTEGER NOT NULL
);

-- 0004: the provincial hub (role = "hub"): region registry, signed trust lists, pushed
-- events with their signed receipts, snapshot batches and leaves, status lists, and
-- witnessed transparency-log checkpoints.  Owner: hub (docs/adr/0400-0409).
-- Invariants:
--   * a region may push only when it is in hub_regions (H17);
--   * per region, hub_events.seq = 1 .. hub_cursors.cursor without gaps: an event, what
--     it stores (batch + leaves, status list, deletions) and the cursor advance commit in
--     ONE transaction, so an acknowledged event is stored exactly once;
--   * hub_batches hold verified attestation payloads under the province pseudonym only;
--     a deregistration deletes that region's leaves of the pseudonym (redacted in place);
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

-- A verified batch is stored as ONE row (docs/adr/0401): its leaves as the serialised
-- SnapshotBatch it arrived in, and the leaves' province pseudonyms concatenated (32 bytes
-- each, in leaf order; zeros where a leaf is deleted).  A lookup by pseudonym scans the
-- pseudonym blobs (C speed, 32 MB per million people) instead of maintaining a random-key
-- index on the ingest path.  present = leaves still held (decremented on deregistration).
CREATE TABLE hub_batches (
    id             INTEGER PRIMARY KEY,
    region         TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    period         TEXT NOT NULL,
    scheme_id      TEXT NOT NULL,
    scheme_version TEXT NOT NULL,
    payload_type   TEXT NOT NULL,
    leaves         INTEGER NOT NULL,
    present        INTEGER NOT NULL,
    root_hash      BLOB NOT NULL,
    checkpoint     BLOB NOT NULL,
    pseudonyms     BLOB NOT NULL,
    batch          BLOB NOT NULL,                   -- serialised SnapshotBatch as verified
    received_at    INTEGER NOT NULL,
    UNIQUE (region, batch_id)
);

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

-- Read-only convenience view (tests, inspection; slow on big hubs): one row per leaf held.
CREATE VIEW hub_leaves AS
WITH RECURSIVE leaf (batch, idx) AS (
    SELECT id, 0 FROM hub_batches WHERE leaves > 0
    UNION ALL
    SELECT leaf.batch, leaf.idx + 1 FROM leaf JOIN hub_batches AS b ON b.id = leaf.batch
    WHERE leaf.idx + 1 < b.leaves
)
SELECT leaf.batch AS batch, leaf.idx AS idx, substr(b.pseudonyms, leaf.idx * 32 + 1, 32) AS pseudonym
FROM leaf JOIN hub_batches AS b ON b.id = leaf.batch
WHERE substr(b.pseudonyms, leaf.idx * 32 + 1, 32) != zeroblob(32);

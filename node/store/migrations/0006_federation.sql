-- 0006_federation: the node's trust state and peer sync state (node/federation/_trust.py, node/federation/_sync.py).
-- Trust lists accepted from the hub; the highest version is current (never rolled back).
CREATE TABLE trust_lists (
    issuer      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    envelope    BLOB NOT NULL,        -- the verified TrustList envelope, exactly as signed
    sha256      BLOB NOT NULL,
    accepted_at INTEGER NOT NULL,
    source      TEXT NOT NULL,        -- file | <peer id> it came from
    PRIMARY KEY (issuer, version)
) WITHOUT ROWID;

-- Evidence: every trust list refused (rollback, equivocation, expired, bad signature).
CREATE TABLE trust_refusals (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    source  TEXT NOT NULL,
    version INTEGER NOT NULL,         -- the version the refused list claimed (-1 unreadable)
    reason  TEXT NOT NULL
);

-- Trust material fetched from peers: the highest version seen per (region, item).
-- item: key_set | status_list | scheme:<id> | mapping:<id>
CREATE TABLE peer_material (
    region     TEXT NOT NULL,
    item       TEXT NOT NULL,
    version    TEXT NOT NULL,         -- numeric versions as decimal text
    sha256     BLOB NOT NULL,
    body       BLOB NOT NULL,
    fetched_at INTEGER NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (region, item)
) WITHOUT ROWID;

-- Sync state per peer (what `huxin status` shows).
CREATE TABLE sync_peers (
    peer         TEXT PRIMARY KEY,
    last_attempt INTEGER NOT NULL DEFAULT 0,
    last_success INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    updated      INTEGER NOT NULL DEFAULT 0  -- items that changed in the last success
) WITHOUT ROWID;

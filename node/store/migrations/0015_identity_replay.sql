-- 0015: accepted identity assertions, shared by every replica of a node (issue 18,
-- docs/adr/0702; the assertion is good for ONE call, docs/adr/0416).
-- Invariants:
--   * one row per accepted assertion key (16 bytes of SHA-256 over issuer and nonce;
--     never the ID number); an INSERT that finds the key refuses the replay;
--   * a row is kept until until_at (Unix seconds: the assertion's own expiry), then
--     deleted by the next admission.
-- SQLite nodes keep their journal file (node/rpc/_replay.py); this table is the
-- PostgreSQL one, present on both backends for schema parity.
CREATE TABLE identity_replay (
    replay_key BLOB PRIMARY KEY,
    until_at   INTEGER NOT NULL
);
CREATE INDEX identity_replay_by_until ON identity_replay (until_at);

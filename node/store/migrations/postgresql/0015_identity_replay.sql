-- PostgreSQL twin of ../0015_identity_replay.sql (same tables and columns; docs/adr/0700).
-- 0015: accepted identity assertions, shared by every replica of a node (issue 18,
-- docs/adr/0702; the assertion is good for ONE call, docs/adr/0416).
-- Invariants:
--   * one row per accepted assertion key (16 bytes of SHA-256 over issuer and nonce;
--     never the ID number); an INSERT that finds the key refuses the replay;
--   * a row is kept until until_at (Unix seconds: the assertion's own expiry), then
--     deleted by the next admission.
CREATE TABLE identity_replay (
    replay_key BYTEA PRIMARY KEY,
    until_at   BIGINT NOT NULL
);
CREATE INDEX identity_replay_by_until ON identity_replay (until_at);

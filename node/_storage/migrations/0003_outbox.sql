-- 0003_outbox: reserved for a migration being written in this session (placeholder, no-op).
SELECT 1;

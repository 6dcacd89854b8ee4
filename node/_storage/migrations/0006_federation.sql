-- 0006_federation: reserved for a migration being written in this session (placeholder, no-op).
SELECT 1;

-- 0004_hub: reserved for a migration being written in this session (placeholder, no-op).
SELECT 1;

-- 0010: RESERVED for the population registry (issue 15 §1), being written in parallel.
-- Placeholder so that numbering has no gap while 0011 (citizen rights) lands first;
-- replace this file with the population migration when the branches are merged.
SELECT 1;

-- 0013: RESERVED for consent-purpose scenarios (ADR 0512) (issue 15, helper "disclose"), written in parallel.
-- Placeholder so that numbering has no gap while 0015 (published monthly grades) lands;
-- replace this file with that migration when the branches are merged.
SELECT 1;

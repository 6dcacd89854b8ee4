-- 0012: RESERVED for incentive-catalogue publication (ADR 0511) (issue 15, helper "catalogue"), written in parallel.
-- Placeholder so that numbering has no gap while 0015 (published monthly grades) lands;
-- replace this file with that migration when the branches are merged.
SELECT 1;

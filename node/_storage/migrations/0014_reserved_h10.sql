-- 0014: RESERVED for responsible-individual deductions (ADR 0513) (issue 15, helper "h10"), written in parallel.
-- Placeholder so that numbering has no gap while 0015 (published monthly grades) lands;
-- replace this file with that migration when the branches are merged.
SELECT 1;

-- 0012: number held for the incentive-catalogue branch of issue 15 (docs/adr/0511),
-- which ships its own 0012 in place of this file. Empty: the numbering has no gaps.
SELECT 1;

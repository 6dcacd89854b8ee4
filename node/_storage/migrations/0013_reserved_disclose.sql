-- 0013: number held for the disclosure branch of issue 15 (docs/adr/0512), which
-- ships its own 0013 in place of this file. Empty: the numbering has no gaps.
SELECT 1;

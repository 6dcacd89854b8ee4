-- PostgreSQL twin of ../0012_organisation_listings.sql (same tables and columns; docs/adr/0700).
-- 0012: responsible-individual deductions rest on a legal document and a listing
-- (H10; docs/adr/0513).
-- Invariants:
--   * organisation_listings holds organisations' entries on and removals from a list
--     (today only 'severe_dishonesty', 严重失信主体名单), as filed, never updated: an
--     organisation is on the list on day D iff its latest event with on_date <= D is
--     'listed' (a 'removed' event on the same day wins). Organisations are not
--     residents: no subject_key, no ID number; they are keyed by their GB 32100
--     unified social credit code and survive any person's deregistration;
--   * listing ids belong to the filing department (PRIMARY KEY submitted_by,
--     listing_id); their batches share source_batches with record and fact batches;
--   * records.legal_document of a responsible-individual deduction holds
--     "<kind> <number>" (what the engine reads and explains); the rest of the
--     reference (issuer, date, organisation code) is kept beside it for the trail and
--     erased with the record.

CREATE TABLE organisation_listings (
    submitted_by      TEXT NOT NULL,   -- certificate identity of the filing department
    listing_id        TEXT NOT NULL,
    organisation_code TEXT NOT NULL,   -- GB 32100, 18 characters, check character verified
    list              TEXT NOT NULL CHECK (list IN ('severe_dishonesty')),
    event             TEXT NOT NULL CHECK (event IN ('listed', 'removed')),
    on_date           TEXT NOT NULL,   -- YYYY-MM-DD
    batch_id          TEXT NOT NULL,
    submitted_at      TEXT NOT NULL,
    PRIMARY KEY (submitted_by, listing_id)
);
CREATE INDEX organisation_listings_by_code
    ON organisation_listings (organisation_code, list, on_date);

ALTER TABLE records ADD COLUMN legal_issuer TEXT;
ALTER TABLE records ADD COLUMN legal_issued_on TEXT;
ALTER TABLE records ADD COLUMN organisation_code TEXT;

"""Organisations on the severe-dishonesty list (H10; docs/adr/0513).

A deduction from the individual directly responsible for an organisation's
dishonesty (Heihe 三(二)4) needs the organisation to be a severely dishonest
subject on a list (严重失信主体名单) when the record is recognised.  The list is
itself data a source files: ``SourceService.SubmitOrganisationListings``
takes listing events (``listed`` / ``removed``) keyed by the organisation's
GB 32100 unified social credit code.  Organisations are not residents: they
have no subject key and no ID number, and their rows outlive any person's
deregistration.

Modules: ``_listings`` (vocabulary, pure validation), ``_intake`` (the listing
batch's write unit and the "listed on day D" check record intake runs inside
its own unit), ``_service`` (the RPC).
"""

from node.organisations._intake import listed_problems, store_listings
from node.organisations._listings import LISTINGS_MAX, LISTS, Listing, validate_listings
from node.organisations._service import submit_listings

__all__ = [
    "LISTINGS_MAX",
    "LISTS",
    "Listing",
    "listed_problems",
    "store_listings",
    "submit_listings",
    "validate_listings",
]

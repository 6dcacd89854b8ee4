"""The citizen's pages: plain HTML, CSS and JavaScript served by the node (issue 19).

The pages are the citizen's view of the citizen JSON API of :mod:`node.http`:
sign-in through the configured identity provider, the score with every point
explained (H12), incentives (H14, N20), consents with a preview and a QR code,
the query log with its inclusion proofs checked in the browser (H16, N23),
objections and their deadlines, repair applications (N22), supplements (N9),
opt-out (N3) and deregistration (N4), and a printable 信用报告.

Invariants:

* every byte a page needs is served by the node from ``static/`` (package data):
  no script, style, font or image from the internet, and a Content-Security-Policy
  on every page that forbids loading one (``default-src 'none'``, scripts and
  styles from this origin only, no inline script);
* the pages hold no personal data: each is a fixed shell that asks the JSON API
  for the signed-in citizen's own data with the session cookie, so a page can be
  cached and nothing personal is in its URL;
* no page shows or asks for a citizen ID number (the identity provider's own
  page does, outside these pages); the citizen is shown by the pseudonym the
  API gives; no score leaves except in a consent the citizen grants;
* Chinese first: every page is written in Chinese with its English beside it
  (``data-en``), switched in the browser without a round trip.

Modules: ``_pages`` (the page table, the shared layout, the routes).  May import
``node.core`` and ``node.http``; imported only by the HTTP edge's wiring.
"""

from node.web._pages import CONTENT_SECURITY_POLICY, PAGES, STATIC_DIR, Page, citizen_routes

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "STATIC_DIR", "Page", "citizen_routes"]

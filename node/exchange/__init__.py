"""The attestation exchange's own rules: what a request must look like, how a
grade is mapped for it, who may ask how often, and what the operator audits.

Modules: ``_request_form`` (the form every node the request reaches checks alike),
``_mapping`` (the node's mapping tables: native grade to a target scheme's grade),
``_refusals`` (which refusals get a transparency-log leaf, bounded), ``_throttle``
(per-requester rate limit, N23, H16), ``_review`` (the operator's report of every third-party query, N23).

May import: ``node.core``, ``node.store``, ``node.disclosure`` and the pure packages.
"""

__all__: list[str] = []

"""The attestation exchange: the request served as one domain function, and its own
rules: what a request must look like, when a consent may be used, how a grade is
mapped for it, who may ask how often, and what the operator audits.

Modules: ``_issue`` (:func:`~node.exchange._issue.issue`, ``RequestAttestation``'s
domain: its steps are its docstring), ``_consent`` (the consent rules, the only
copy), ``_tokens`` (consent tokens verified, then parsed, once),
``_request_form`` (the form every node the request reaches checks alike),
``_mapping`` (the node's mapping tables: native grade to a target scheme's grade),
``_refusals`` (which refusals get a transparency-log leaf, bounded), ``_throttle``
(per-requester rate limit, N23, H16), ``_review`` (the operator's report of every third-party query, N23).

May import: ``node.core``, ``node.store``, ``node.disclosure`` and the pure packages;
``_issue`` also the domain rooms a request reads (``node.derived``, ``node.monthly``,
``node.rights``) and, for its type only, the RPC layer's node context.
"""

__all__: list[str] = []

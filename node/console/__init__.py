"""The operator's console: the node's state for the people who run it, in a browser (issue 19).

Served on the mutual-TLS HTTPS listener (``node.http``) to a client certificate
registered with the operator role (docs/adr/0415, 0802), Chinese first with English
labels, everything from the node itself (Apache ECharts is vendored under
``static/vendor/echarts`` with its licence; nothing is loaded from the internet):

* grades by published month as charts (H3, docs/adr/0514), from the published
  monthly grades with corrections applied;
* model evaluation and rollout state (H11) and the monthly runs' progress;
* objections and repair applications with each step's deadline, overdue first, and
  the operator's action on the objections it handles (H15, N21, N22);
* the query review with its flags (H16, N23) and the sources' timeliness (N7);
* the federation: peers, sync, push cursor, trust list, certificate and key expiry.

Modules: ``_data`` (the pages' reads, JSON-ready), ``_federation`` (the federation
page), ``_routes`` (:func:`console_routes`, the pages, the JSON under
``/console/api/...`` and the static files).  The reads are ``node.store._console``
and the repositories the CLI uses; the one action is the domain function the gRPC
``ResolveObjection`` calls.

May import: ``node.core``, ``node.store``, the domain rooms (``monthly``, ``model``,
``rights``, ``exchange``, ``federation``), ``node.http`` (the HTTP context) and
``node.rpc._context`` (the node context, for types); imported only by the HTTP app's
wiring.
"""

from node.console._routes import console_routes

__all__ = ["console_routes"]

"""The provincial hub (H13): region registry and trust list, ingest of pushed
events, witnessing.

Modules: ``_registry`` (regions and the signed trust list), ``_ingest`` (verify and
store a pushed batch in one transaction, sign a receipt), ``_service`` (the
``HubService`` RPCs), ``_role`` (wiring the hub's parts into ``huxin serve``).

May import: ``node.core``, ``node.store``, ``node.federation``, ``node.monthly``,
``node.rpc`` (the guard and the node context).
"""

__all__: list[str] = []

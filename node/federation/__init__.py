"""A region among regions: trust, peers, the provincial hub as seen from a region.

Modules: ``_trust`` (the hub's signed trust list the node follows), ``_callers``
(who may speak as whom on the peer port), ``_clients`` (the registry of integrator
and department certificates), ``_route`` (relaying a request to the subject's home
region), ``_sync`` (pulling peers' trust material, schemes, tables and
catalogues), ``_push`` (outbox events to the hub, H13), ``_witness`` (checking
regions' transparency logs), ``_tlscert`` (the node's own certificate and its
renewal).

May import: ``node.core``, ``node.store``, ``node.exchange``, ``node.catalogue``,
``node.hub`` (receipts it verifies) and ``node.rpc`` (outgoing channels and the
peer servicer a relay calls).
"""

__all__: list[str] = []

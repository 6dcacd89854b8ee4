"""The gRPC edge: server wiring, the guard interceptor, servicers, client channels.

Servicers decode a request, call one domain function, encode the answer; the
guard reads every call once (identity, limits, errors to status).  Modules:
``_server`` (two ports, health, reflection, metrics, shutdown), ``_guard``,
``_peer`` / ``_citizen`` / ``_source`` (the three services), ``_identity`` and
``_replay`` (citizen identity assertions, accepted once), ``_context`` (every
collaborator a servicer needs, assembled once per node), ``_client`` (outgoing
mutual-TLS channels), ``_port_limits``, ``_workers`` (peer-port worker processes).

May import every product room; only ``node.cli`` and ``node.demo`` import it back
for wiring, plus the domain rooms' use of ``_context`` and ``_client``.
"""

__all__: list[str] = []

"""Generated code for ``huxin.v1`` (``tools/gen_proto.py``; do not edit by hand).

Modules: ``scoring_pb2``, ``node_pb2``, ``hub_pb2`` and their ``*_pb2_grpc`` service
stubs.  The messages the pure core verifies (``attestation_pb2``, ``catalogue_pb2``)
live in ``keys.pb.v1`` (docs/adr/0604); ``node_pb2`` and ``hub_pb2`` import them there.
"""

__all__: list[str] = []

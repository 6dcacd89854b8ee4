"""Generated code for ``huxin.v1`` (``tools/gen_proto.py``; do not edit by hand).

Modules: ``scoring_pb2``, ``attestation_pb2``, ``node_pb2``, ``hub_pb2`` and their
``*_pb2_grpc`` service stubs.
"""

__all__: list[str] = []

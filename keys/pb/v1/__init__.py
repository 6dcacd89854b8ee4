"""Generated code for the ``huxin.v1`` messages ``keys`` verifies (``tools/gen_proto.py``;
do not edit by hand).

Modules: ``attestation_pb2`` (envelopes, attestations, batches, key sets, trust and
status lists, mapping approvals) and ``catalogue_pb2`` (the incentive catalogue).
They declare no service, so no ``*_pb2_grpc`` module exists here.
"""

__all__: list[str] = []

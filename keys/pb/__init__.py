"""Generated protobuf messages of the pure core (``make proto``); the schema lives in
``proto/keys/pb/``.

Invariant: this package imports protobuf and nothing else of the project (no ``node``,
no grpc), so ``keys`` verifies attestations offline without the node installed
(docs/adr/0604).
"""

__all__: list[str] = []

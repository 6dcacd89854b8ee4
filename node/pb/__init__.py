"""Generated gRPC and protobuf code (``make proto``); the schema lives in ``proto/``."""

__all__: list[str] = []

"""Node: the region node and provincial hub (gRPC, storage, sync) and the ``huxin`` CLI."""

__all__: list[str] = []

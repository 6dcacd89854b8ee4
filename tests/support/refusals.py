"""The one check of a refused gRPC call.

A node refuses with a status code, a machine-readable reason (``huxin-reason``
trailer) and, for a bad field, the field's name (``huxin-field``): a test states
the ones it cares about and gets the error back for anything else it checks.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from grpc import aio

from node.rpc._client import field_of, reason_of

__all__ = ["expect_refused"]


async def expect_refused(
    call: Awaitable[Any],
    status: grpc.StatusCode | None = None,
    reason: str | None = None,
    field: str | None = None,
) -> aio.AioRpcError:
    """Await ``call``, which must fail with :class:`grpc.aio.AioRpcError`; assert its
    status, reason and field where given (``None``: not checked) and return it."""
    with pytest.raises(aio.AioRpcError) as info:
        await call
    err = info.value
    if status is not None:
        assert err.code() == status, err.details()
    if reason is not None:
        assert reason_of(err) == reason, err.details()
    if field is not None:
        assert field_of(err) == field, err.details()
    return err

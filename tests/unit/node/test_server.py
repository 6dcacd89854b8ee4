"""node/rpc/_server.py: a started node keeps its startup heap out of the collector's
generations, and a stopped one gives it back (docs/adr/0325)."""

from __future__ import annotations

import gc
from pathlib import Path

from node.demo._testbed import Testbed


async def test_start_freezes_the_heap_and_stop_unfreezes_it(tmp_path: Path) -> None:
    bed = Testbed(tmp_path)
    await bed.start_node("heihe", "heihe")
    try:
        assert gc.get_freeze_count() > 0  # everything alive at start: permanent generation
    finally:
        await bed.stop_node("heihe")
    assert gc.get_freeze_count() == 0  # collectable again: an in-process node leaves no trace

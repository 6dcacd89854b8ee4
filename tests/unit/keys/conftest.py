"""Fixtures for keys tests: deterministic keys and the external vector files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keys import KeyPair

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
EXTERNAL = VECTORS / "external"


def load_external(name: str) -> Any:
    return json.loads((EXTERNAL / name).read_text(encoding="utf-8"))


def fixed_key(label: str) -> KeyPair:
    """A deterministic key pair for tests (seed = label padded to 32 bytes)."""
    return KeyPair(label.encode().ljust(32, b"\x00")[:32])


@pytest.fixture
def signer() -> KeyPair:
    return fixed_key("signer")

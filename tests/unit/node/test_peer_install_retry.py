"""Issue 16 (H13, C3): `huxin mapping install --from-peer` installs a peer's table without
its approval only when the approval does not cover it (MAPPING_NOT_APPROVED); any other
refusal of the install leaves the table out, never retried."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from node.cli import _recognition as rec
from node.recognition._verify import TableRefused


def _run(monkeypatch: pytest.MonkeyPatch, code: str) -> tuple[list[Any], list[str], list[Any]]:
    calls: list[Any] = []

    async def served(*_: object, **__: object) -> list[Any]:
        return [SimpleNamespace(content=b"t", approval=b"a")]

    def install(_conn: object, _verified: object, approval: object, **_: object) -> None:
        calls.append(approval)
        if approval is not None or code == "TOO_MANY_TABLES":
            raise TableRefused(code, "refused")

    verifier = SimpleNamespace(
        table=lambda *_: SimpleNamespace(table=object()),
        approval=lambda *_: "approval",
        in_scope=lambda *_: None,
    )
    monkeypatch.setattr(rec, "peer_tables", served)
    monkeypatch.setattr(rec, "install", install)
    monkeypatch.setattr(
        rec.GovernedSet, "of", classmethod(lambda cls, *a, **k: SimpleNamespace(tables=["g"]))
    )
    done, refused = rec._install_peer(None, None, verifier, "hainan", now=0, now_iso="")  # type: ignore[arg-type]
    return done, [e.code for e in refused], calls


def test_only_an_uncovering_approval_is_retried_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 16, H13, C3: MAPPING_NOT_APPROVED installs the table unapproved (one retry);
    TOO_MANY_TABLES installs nothing and is reported, with no second attempt."""
    done, codes, calls = _run(monkeypatch, "MAPPING_NOT_APPROVED")
    assert (len(done), codes, calls) == (1, ["MAPPING_NOT_APPROVED"], ["approval", None])
    done, codes, calls = _run(monkeypatch, "TOO_MANY_TABLES")
    assert (done, codes, calls) == ([], ["TOO_MANY_TABLES"], ["approval"])

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


# ---------------------------------------------------------------- a small world

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z
DAY = 86_400
AUD = "hainan-bank-001"
SALT = b"binding-salt-0123456789abcdef!!"
SUBJECT = "23110219900517123X"


def _scenarios() -> tuple[Any, ...]:
    from keys import TrustedScenario

    return (
        TrustedScenario("heihe/credit-loans", "2024", "A", "grade_and_score", "信用贷款"),
        TrustedScenario("heihe/deposit-free-rental", "2024", "A", "threshold", "免押金"),
        TrustedScenario("heihe/transit-discount", "2024", "A", "threshold", "公共交通"),
        TrustedScenario("hainan-jinyefen/bank-credit", "2025", "AA", "threshold", "银行信用贷款"),
    )


SCENARIOS = _scenarios()


class World:
    """Heihe and Hainan regions, a Heilongjiang hub, keys, trust list, status list."""

    def __init__(self) -> None:
        from keys import (
            KeySet,
            ScenarioCatalogue,
            StatusList,
            TrustedRegion,
            TrustList,
            sign_approved_mappings,
            verify_approved_mappings,
        )
        from node.pb.v1 import attestation_pb2 as pb

        self.hub_root = fixed_key("hub-root")
        self.heihe_root = fixed_key("heihe-root")
        self.heihe_old = fixed_key("heihe-signing-1")
        self.heihe_key = fixed_key("heihe-signing-2")
        self.heihe_revoked = fixed_key("heihe-signing-x")
        self.hainan_root = fixed_key("hainan-root")
        self.hainan_key = fixed_key("hainan-signing-1")
        self.stranger = fixed_key("stranger")

        ks = KeySet.new("heihe", self.heihe_root.public_key, T0 - 400 * DAY)
        ks = ks.add_key(self.heihe_old.public_key, T0 - 400 * DAY, T0 - 30 * DAY)
        ks = ks.add_key(self.heihe_key.public_key, T0 - 31 * DAY, T0 + 365 * DAY)
        ks = ks.add_key(self.heihe_revoked.public_key, T0 - 31 * DAY, T0 + 365 * DAY)
        ks = ks.revoke(self.heihe_revoked.key_id, T0 - 10 * DAY, "compromised")
        self.heihe_keys = ks
        hs = KeySet.new("hainan", self.hainan_root.public_key, T0 - 400 * DAY)
        hs = hs.add_key(self.hainan_key.public_key, T0 - 100 * DAY, T0 + 365 * DAY)
        self.hainan_keys = hs
        self.regions = (
            TrustedRegion(
                "hainan",
                self.hainan_root.public_key,
                hs.sign(self.hainan_root),
                name="Hainan",
                schemes=("hainan-jinyefen@2025",),
            ),
            TrustedRegion(
                "heihe",
                self.heihe_root.public_key,
                ks.sign(self.heihe_root),
                name="Heihe",
                schemes=("heihe@2024",),
                endpoints=("127.0.0.1:7001",),
                tls_sha256=(b"\x01" * 32,),
            ),
        )
        self.trust_v2 = TrustList("hlj-hub", 2, T0 - DAY, T0 + 30 * DAY, self.regions).sign(
            self.hub_root
        )
        self.trust_v1 = TrustList("hlj-hub", 1, T0 - 9 * DAY, T0 + 30 * DAY, self.regions).sign(
            self.hub_root
        )
        self.trust_expired = TrustList("hlj-hub", 3, T0 - 60 * DAY, T0 - DAY, self.regions).sign(
            self.hub_root
        )
        self.scenarios = ScenarioCatalogue.of("hlj-hub", T0 - DAY, SCENARIOS)
        self.scenarios_env = self.scenarios.sign(self.hub_root)
        self.approval = pb.MappingApproval(
            mapping_sha256=b"\x07" * 32,
            mapping_id="heihe-to-hainan",
            mapping_version="1",
            method="anchored",
            source_scheme_id="heihe",
            source_scheme_version="2024",
            source_region="heihe",
            target_scheme_id="hainan-jinyefen",
            target_scheme_version="2025",
            target_region="hainan",
            effective_from=T0 - 400 * DAY,
            decision="approved",
            authority="hlj-hub",
            reach_eligible=887_500,
            reach_kept=887_500,
            reach_ppm=1_000_000,
            issued_at=T0 - 400 * DAY,
        )
        self.approvals_env = sign_approved_mappings(
            "hlj-hub", T0 - DAY, [self.approval], self.hub_root
        )
        self.approvals = verify_approved_mappings(
            self.approvals_env, self.hub_root.public_key, "hlj-hub"
        )
        self.bundle_v2 = pb.TrustBundle(
            trust_list=self.trust_v2.to_proto(),
            scenarios=self.scenarios_env.to_proto(),
            mapping_approvals=self.approvals_env.to_proto(),
        ).SerializeToString(deterministic=True)
        self.status = StatusList("heihe", "heihe-2026-11")
        self.status.set(7, 1)  # revoked
        self.status.set(8, 2)  # suspended
        self.status.set(9, 3)  # superseded

    def attestation(self, **changes: object) -> Any:
        from dataclasses import replace

        from keys import Attestation, MappedGrade, Threshold, subject_binding

        base = Attestation(
            attestation_id="att-0001",
            issuer_region="heihe",
            scheme_id="heihe",
            scheme_version="2024",
            grade="AA",
            period="2026-10",
            model_version="heihe-2024.1",
            issued_at=T0 - 3600,
            expires_at=T0 + 7 * DAY,
            subject_binding=subject_binding(SALT, SUBJECT),
            consent_id="consent-42",
            consent_sha256=b"\x42" * 32,
            audience=AUD,
            purpose="heihe/credit-loans",
            nonce=b"nonce-123",
            status_list_id="heihe-2026-11",
            status_index=3,
            score=780,
            mapped=MappedGrade(
                "A", "hainan-jinyefen", "2025", "heihe-to-hainan", "1", b"\x07" * 32, "anchored"
            ),
            scenario="heihe/credit-loans",
            disclosure="grade_and_score",
            threshold=Threshold("heihe", "2024", "A"),
        )
        return replace(base, **changes)

    def threshold_attestation(self, **changes: object) -> Any:
        """A threshold attestation: "meets heihe/deposit-free-rental", no grade, no score."""
        from keys import Threshold

        base = {
            "grade": "",
            "score": None,
            "mapped": None,
            "purpose": "heihe/deposit-free-rental",
            "scenario": "heihe/deposit-free-rental",
            "disclosure": "threshold",
            "threshold": Threshold("heihe", "2024", "A"),
        }
        return self.attestation(**{**base, **changes})

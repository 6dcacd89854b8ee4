"""Crypto benchmark: envelopes vs raw PyNaCl, Merkle batches, PyJWT baseline.

All figures are measured in the same run on one core, in CPU time of this
process (``time.process_time``), so a busy shared machine lowers them less:

* single-envelope sign / verify (``keys.sign`` / ``keys.verify_envelope``) against
  raw PyNaCl ``SigningKey.sign`` / ``VerifyKey.verify`` of the same PAE bytes
  (goal: >= 80 % of raw);
* the full integrator call ``verify_attestation`` on a singly-signed attestation;
* batch issue (serialise, hash, sign one checkpoint, build every item's proof
  bundle) and batch verify (``verify_attestation`` on every bundle: checkpoint
  signature checked once, then an inclusion path per item) for 10,000 items
  (goal: >= 100,000/s verified, i.e. >= 20x per-item signature checks):
  ``verify_batch_payloads`` (a pushed batch: checkpoint once, root recomputed
  from the payloads), ``verify_batch`` (10,000 self-contained bundles, every
  attestation check) and ``verify_attestation`` on each bundle (own path);
* the equivalent JWT (PyJWT, EdDSA) encode and decode-with-verify.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict

import jwt
import nacl.signing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import (
    ATTESTATION_TYPE,
    Attestation,
    Batch,
    KeyPair,
    KeySet,
    ScenarioCatalogue,
    Threshold,
    Trust,
    TrustedScenario,
    issue_attestation,
    issue_batch,
    pae,
    sign,
    subject_binding,
    verify_attestation,
    verify_batch,
    verify_batch_payloads,
    verify_envelope,
)

#: CPU time of this process: "per second on one core" even when the machine is
#: shared (wall time would also count the time other processes hold the core).
_clock = time.process_time

T0 = 1_793_491_200
AUD = "hainan-bank-001"


def _rates(fns: list[Callable[[], object]], n: int, rounds: int = 7) -> list[float]:
    """Operations per second of each of ``fns``: best of ``rounds`` interleaved rounds.

    Interleaving (a, b, a, b, ...) keeps a change in machine load from
    favouring one side of a ratio.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            start = _clock()
            for _ in range(n):
                fn()
            best[k] = min(best[k], _clock() - start)
    return [n / b for b in best]


def _timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = _clock()
        fn()
        best = min(best, _clock() - start)
    return best


def _attestation(i: int) -> Attestation:
    return Attestation(
        attestation_id=f"att-{i:08d}",
        issuer_region="heihe",
        scheme_id="heihe",
        scheme_version="2024",
        grade="AA",
        period="2026-10",
        model_version="heihe-2024.1",
        issued_at=T0 - 3600,
        expires_at=T0 + 30 * 86400,
        subject_binding=subject_binding(b"salt-%08d-padding!!" % i, "23110219900517123X"),
        consent_id=f"consent-{i}",
        consent_sha256=b"\x42" * 32,
        audience=AUD,
        purpose="heihe/credit-loans",
        status_list_id="heihe-2026-11",
        status_index=i,
        score=700 + i % 200,
        scenario="heihe/credit-loans",
        disclosure="grade_and_score",
        threshold=Threshold("heihe", "2024", "A"),
    )


def run(args: argparse.Namespace) -> str:
    quick = bool(getattr(args, "quick", False))
    n_single = 300 if quick else 3000
    batch_size = 1000 if quick else 10_000

    key = KeyPair(b"bench-signing-key".ljust(32, b"\x00"))
    root = KeyPair(b"bench-root-key".ljust(32, b"\x00"))
    ks = KeySet.new("heihe", root.public_key, T0 - 86400).add_key(
        key.public_key, T0 - 86400, T0 + 365 * 86400
    )
    catalogue = (TrustedScenario("heihe/credit-loans", "2024", "A", "grade_and_score"),)
    trust = Trust.from_key_sets([ks]).with_scenarios(ScenarioCatalogue.of("b", T0, catalogue))
    keys = {key.key_id: key.public_key}

    att = _attestation(1)
    payload = att.to_bytes()
    message = pae(ATTESTATION_TYPE, payload)
    raw_sk = nacl.signing.SigningKey(key.seed)
    raw_vk = raw_sk.verify_key
    raw_sig = raw_sk.sign(message).signature
    env = sign(ATTESTATION_TYPE, payload, key)
    blob = issue_attestation(att, key)

    raw_sign, our_sign = _rates(
        [lambda: raw_sk.sign(message), lambda: sign(ATTESTATION_TYPE, payload, key)], n_single
    )
    raw_verify, our_verify, full_verify = _rates(
        [
            lambda: raw_vk.verify(message, raw_sig),
            lambda: verify_envelope(env, keys, ATTESTATION_TYPE),
            lambda: verify_attestation(blob, trust, T0, AUD),
        ],
        n_single,
    )

    # JWT baseline: the same claims, EdDSA, PyJWT
    jwt_key = Ed25519PrivateKey.from_private_bytes(key.seed)
    jwt_pub = jwt_key.public_key()
    claims = {
        k: (v.hex() if isinstance(v, bytes) else v)
        for k, v in asdict(att).items()
        if v is not None and k != "mapped"
    }
    claims["iat"], claims["exp"], claims["aud"] = att.issued_at, att.expires_at, AUD
    token = jwt.encode(claims, jwt_key, algorithm="EdDSA")

    def jwt_decode() -> object:
        return jwt.decode(
            token,
            jwt_pub,
            algorithms=["EdDSA"],
            audience=AUD,
            options={"verify_exp": False, "verify_iat": False},
        )

    jwt_enc, jwt_dec = _rates(
        [lambda: jwt.encode(claims, jwt_key, algorithm="EdDSA"), jwt_decode], n_single
    )

    # Batches
    atts = [_attestation(i) for i in range(batch_size)]
    holder: list[object] = []

    def do_issue() -> None:
        batch = issue_batch(atts, key, "heihe", T0 - 60)
        holder[:] = [batch, batch.bundles()]

    issue_s = _timed(do_issue)
    bundles = holder[1]
    assert isinstance(bundles, list)

    def do_verify() -> None:
        trust._checkpoints.clear()  # the checkpoint is verified once per run, not cached across
        for b in bundles:
            verify_attestation(b, trust, T0, AUD)

    def do_verify_batch() -> None:
        trust._checkpoints.clear()
        results = verify_batch(bundles, trust, T0, AUD)
        assert not any(isinstance(r, Exception) for r in results)

    batch_obj = holder[0]
    assert isinstance(batch_obj, Batch)
    checkpoint_pb = batch_obj.checkpoint.to_proto()

    def do_verify_payloads() -> None:
        trust._checkpoints.clear()
        verify_batch_payloads(batch_obj.payloads, checkpoint_pb, trust, T0)

    # The batch rows and their baseline are measured in the same interleaved rounds
    # (raw verify of n_single items, then each batch verifier), best round of each.
    def raw_verify_many() -> None:
        for _ in range(n_single):
            raw_vk.verify(message, raw_sig)

    best = [float("inf")] * 4
    for _ in range(3 if quick else 7):
        for k, fn in enumerate((raw_verify_many, do_verify, do_verify_batch, do_verify_payloads)):
            best[k] = min(best[k], _timed(fn, repeat=1))
    raw_verify_batch_run = n_single / best[0]
    verify_s, batch_s, payloads_s = best[1:]
    batch_issue_rate = batch_size / issue_s
    item_verify_rate = batch_size / verify_s
    batch_verify_rate = batch_size / batch_s
    payloads_rate = batch_size / payloads_s

    rows = [
        ("Envelope sign (keys.sign)", our_sign, raw_sign, "raw PyNaCl sign, same bytes"),
        ("Envelope verify (keys.verify_envelope)", our_verify, raw_verify, "raw PyNaCl verify"),
        ("verify_attestation, single envelope", full_verify, raw_verify, "raw PyNaCl verify"),
        (f"Batch issue, {batch_size:,} (per item)", batch_issue_rate, raw_sign, "per-item sign"),
        (
            f"Batch verify, {batch_size:,} payloads + 1 checkpoint (verify_batch_payloads)",
            payloads_rate,
            raw_verify_batch_run,
            "per-item signature check (interleaved)",
        ),
        (
            f"Batch verify, {batch_size:,} bundles, all checks (verify_batch)",
            batch_verify_rate,
            raw_verify_batch_run,
            "per-item signature check (interleaved)",
        ),
        (
            f"Batch members, {batch_size:,} (verify_attestation each, own proof)",
            item_verify_rate,
            raw_verify_batch_run,
            "per-item signature check (interleaved)",
        ),
        ("JWT EdDSA encode (PyJWT)", jwt_enc, raw_sign, "raw PyNaCl sign"),
        ("JWT EdDSA decode + verify (PyJWT)", jwt_dec, raw_verify, "raw PyNaCl verify"),
    ]
    lines = [
        "## Crypto (keys)",
        "",
        "Operations per second of CPU time on one core (process time, best of interleaved",
        "rounds); ratio = this row / its baseline, both measured in this run. Goals: envelope",
        "sign/verify >= 0.80x raw; batch verify >= 100,000/s and >= 20x per-item signature checks.",
        "",
        "| operation | ops/s | baseline | baseline ops/s | ratio |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for name, rate, base, base_name in rows:
        lines.append(f"| {name} | {rate:,.0f} | {base_name} | {base:,.0f} | {rate / base:.2f}x |")
    lines += [
        "",
        f"verify_attestation vs PyJWT decode: {full_verify / jwt_dec:.2f}x; verify_batch "
        f"vs PyJWT decode: {batch_verify_rate / jwt_dec:.1f}x. "
        f"Payload {len(payload)} bytes, batch item bundle {len(bundles[0])} bytes, "
        f"JWT {len(token)} bytes.",
        "",
        "Goals: envelope sign {:.2f}x and verify {:.2f}x raw (>= 0.80x: {}); verify_batch "
        "{:,.0f}/s (>= 100,000: {}), {:.1f}x a per-item signature check (>= 20x: {}).".format(
            our_sign / raw_sign,
            our_verify / raw_verify,
            "met" if min(our_sign / raw_sign, our_verify / raw_verify) >= 0.8 else "NOT met",
            batch_verify_rate,
            "met" if batch_verify_rate >= 100_000 else "NOT met",
            batch_verify_rate / raw_verify_batch_run,
            "met" if batch_verify_rate / raw_verify_batch_run >= 20 else "NOT met",
        ),
    ]
    return "\n".join(lines) + "\n"

"""An ID number in caller-chosen text is refused on every service however it is written.

REQ: H6 (the ID number is the join key only), H17 (no ID number in plain text at rest,
on the wire or in logs) — issue 14 item 3.  Each disguise an attacker used (digits
before the number, groups of four, underscores, dots, dashes, Arabic-Indic and
Devanagari digits, full-width forms, a mix; financial numerals, ○ for
zero, 幺/两, negative-circled digits, invisible fillers) is put into a representative set of fields
of the source, citizen and peer services through real RPCs: each is refused with
INVALID_ARGUMENT ``ID_NUMBER_IN_FIELD`` naming the field (in a record batch: the
per-record reason), the refusal never echoes it, and nothing is written.

One real node (mutual TLS and the citizen port on loopback, its own SQLite file) serves
the module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import batch_rejection_of, field_of, reason_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = make_id_number(601)
LEAK = make_id_number(6)  # 23110019850312006X: the check character is X
TABLES = (
    "records",
    "subjects",
    "residences",
    "source_batches",
    "collection_consents",
    "record_marks",
    "consents",
    "notifications",
    "log_entries",
    "objections",
    "supplements",
)


def _in(text: str, script: str) -> str:
    return text.translate(str.maketrans("0123456789", script))


def _groups(text: str, sep: str, size: int) -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


#: name -> the leaked number as the attacker wrote it
DISGUISES = {
    "prefix-digits": "2024" + LEAK,
    "groups-of-4": _groups(LEAK, " ", 4),
    "underscores": _groups(LEAK, "_", 1),
    "dots": _groups(LEAK, ".", 3),
    "dashes": _groups(LEAK, "-", 2),
    "arabic-indic": _in(LEAK, "٠١٢٣٤٥٦٧٨٩"),
    "devanagari": _in(LEAK, "०१२३४५६७८९"),
    "full-width": _groups(_in(LEAK, "０１２３４５６７８９").replace("X", "Ｘ"), "－", 6),
    "mixed": _in(LEAK[:6], "٠١٢٣٤٥٦٧٨٩") + "_" + _in(LEAK[6:14], "०१२३४५६७८९") + "." + LEAK[14:],
    # written disguises (a representative few; every form is in tests/unit/node/test_freetext.py)
    "financial-numerals": _in(LEAK, "零壹贰叁肆伍陆柒捌玖"),
    "white-circle-zero": _in(LEAK, "○一二三四五六七八九"),
    "negative-circled": _in(LEAK, "⓿❶❷❸❹❺❻❼❽❾"),
    "hangul-fillers": _groups(LEAK, "\u3164", 1),
    "yao-liang-braille-blank": _groups(_in(LEAK, "〇幺两三四五六七八九"), "\u2800", 3),
}


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    court: node_pb2_grpc.SourceServiceStub
    operator: node_pb2_grpc.SourceServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub
    peer: node_pb2_grpc.PeerServiceStub

    def counts(self) -> dict[str, int]:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

    def db_bytes(self) -> bytes:
        db = self.node.server.ctx.config.database
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))

    def me(self) -> tuple[tuple[str, bytes], ...]:
        return self.node.identity(ALICE)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("id-disguises"))
    heihe = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("heihe-court",))

    def stub(identity: str) -> node_pb2_grpc.SourceServiceStub:
        return node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert(identity)))

    n = Node(
        bed,
        heihe,
        stub("heihe-court"),
        stub("heihe"),
        bed.citizen_stub(heihe),
        node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, bed.cert("hainan"))),
    )
    await n.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=[honour_record("seed-0", ALICE)], subjects=[resident(ALICE)]
        )
    )
    yield n
    await bed.close()


Call = Callable[[Node, str], Awaitable[Any]]


def _record(**fields: str) -> Call:
    """A batch whose second record carries ``fields`` with the disguised number."""

    def call(n: Node, leak: str) -> Awaitable[Any]:
        bad = honour_record("id-bad", ALICE)
        for name, template in fields.items():
            setattr(bad, name, template.format(leak))
        return n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="id-batch", records=[honour_record("id-good", ALICE), bad]
            )
        )

    return call


def _consent(n: Node, leak: str) -> Awaitable[Any]:
    return n.court.RecordCollectionConsent(
        node_pb2.CollectionConsent(
            subject_id=ALICE,
            collector="heihe-court",
            stated_use=f"credit scoring of {leak}",
            adverse_consequences_acknowledged=True,
            document_sha256=b"\x01" * 32,
            signed_on="2025-01-01",
        )
    )


# name, the call, the field named, per-record (True: BATCH_REJECTED naming record 1)
FIELDS: list[tuple[str, Call, str, bool]] = [
    ("record-act-id", _record(act_id="act {}"), "act_id", True),
    (
        "record-legal-document-text",
        _record(legal_document_text="judgment {}"),
        "legal_document_text",
        True,
    ),
    ("record-category", _record(category="honour {}"), "category", True),
    (
        "batch-id",
        lambda n, leak: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id=f"b-{leak}", records=[honour_record("id-b", ALICE)]
            )
        ),
        "batch_id",
        False,
    ),
    (
        "residence-kind",
        lambda n, leak: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="id-residence",
                records=[honour_record("id-r", ALICE)],
                subjects=[
                    node_pb2.SubjectInfo(
                        subject_id=ALICE,
                        residence=[
                            node_pb2.ResidenceBasis(kind=f"hukou {leak}", since="2000-01-01")
                        ],
                    )
                ],
            )
        ),
        "subjects[0].residence.kind",
        False,
    ),
    ("stated-use", _consent, "stated_use", False),
    (
        "mark-note",
        lambda n, leak: n.court.MarkRecord(
            node_pb2.MarkRecordRequest(record_id="seed-0", status="revoked", note=f"per {leak}")
        ),
        "note",
        False,
    ),
    (
        "objection-answer-note",
        lambda n, leak: n.court.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id="o-1", outcome="upheld", note=leak)
        ),
        "note",
        False,
    ),
    (
        "supplement-rejection-reason",
        lambda n, leak: n.court.VerifySupplement(
            node_pb2.VerifySupplementRequest(supplement_id="s-1", reason=f"not {leak}")
        ),
        "reason",
        False,
    ),
    (
        "consent-purpose",
        lambda n, leak: n.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose=f"loan {leak}", scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=n.me(),
        ),
        "purpose",
        False,
    ),
    (
        "objection-reason",
        lambda n, leak: n.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id="seed-0", reason=f"not me: {leak}"),
            metadata=n.me(),
        ),
        "reason",
        False,
    ),
    (
        "upload-description",
        lambda n, leak: n.citizen.UploadSupplement(
            node_pb2.UploadSupplementRequest(
                category="honour",
                act_id="a-1",
                description=f"award to {leak}",
                recognised_on="2025-01-01",
                verifier="heihe-court",
                proof_sha256=b"\x01" * 32,
                authorise_verification=True,
            ),
            metadata=n.me(),
        ),
        "description",
        False,
    ),
    (
        "requested-purpose",
        lambda n, leak: n.peer.RequestAttestation(
            node_pb2.AttestationRequest(purpose=f"loan {leak}", nonce=b"\x00" * 16)
        ),
        "purpose",
        False,
    ),
]


@pytest.mark.parametrize(
    ("field_name", "call", "field", "per_record"),
    FIELDS,
    ids=[f[0] for f in FIELDS],
)
@pytest.mark.parametrize("disguise", sorted(DISGUISES))
async def test_a_disguised_id_number_is_refused_in_every_field(
    node: Node,
    disguise: str,
    field_name: str,
    call: Call,
    field: str,
    per_record: bool,
) -> None:
    """Issue 14 item 3 (H6, H17): INVALID_ARGUMENT ``ID_NUMBER_IN_FIELD`` naming the
    field, the number not echoed in any form, nothing written."""
    leak = DISGUISES[disguise]
    before = node.counts()
    with pytest.raises(aio.AioRpcError) as info:
        await call(node, leak)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    if per_record:
        assert reason_of(err) == "BATCH_REJECTED"
        rejection = batch_rejection_of(err)
        assert rejection is not None
        assert [(r.index, r.field, r.code) for r in rejection.rejections] == [
            (1, field, "ID_NUMBER_IN_FIELD")
        ]
    else:
        assert (reason_of(err), field_of(err)) == ("ID_NUMBER_IN_FIELD", field)
    trailer = b"".join(
        v if isinstance(v, bytes) else v.encode() for _, v in err.trailing_metadata() or ()
    )
    for form in (leak, LEAK):
        assert form.encode() not in trailer and form not in (err.details() or "")
    assert node.counts() == before
    stored = node.db_bytes()
    assert leak.encode() not in stored and LEAK.encode() not in stored

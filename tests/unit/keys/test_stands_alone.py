"""The pure core stands alone: ``keys`` (and ``scoring`` and ``mapping``) import no part of ``node``
(issue 17, docs/adr/0604)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf.descriptor import FileDescriptor

from keys.pb.v1 import attestation_pb2, catalogue_pb2

_NO_NODE = "assert not any(m == 'node' or m.startswith('node.') for m in sys.modules), " + (
    "sorted(m for m in sys.modules if m == 'node' or m.startswith('node.'))"
)


@pytest.mark.parametrize(
    "imports",
    [
        pytest.param("import keys, sys; import keys.pb.v1", id="keys"),
        pytest.param(
            "import keys, sys; from keys.pb.v1 import attestation_pb2, catalogue_pb2",
            id="keys-messages",
        ),
        pytest.param("import keys, scoring, mapping, sys", id="pure-core"),
    ],
)
def test_importing_the_pure_core_imports_no_node(imports: str) -> None:
    """Issue 17: an integrator verifies offline with ``keys`` alone; a fresh
    interpreter that imports it has not loaded ``node`` or any of its modules."""
    done = subprocess.run(
        [sys.executable, "-c", f"{imports}; {_NO_NODE}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_probe_fails_when_node_is_imported() -> None:
    """Issue 17: the probe above fails when ``node`` is imported, so it can fail."""
    done = subprocess.run(
        [sys.executable, "-c", f"import sys, keys, node.pb.v1.node_pb2; {_NO_NODE}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "AssertionError" in done.stderr


@pytest.mark.parametrize(
    ("descriptor", "file_name"),
    [
        pytest.param(attestation_pb2.DESCRIPTOR, "keys/pb/v1/attestation.proto", id="attestation"),
        pytest.param(catalogue_pb2.DESCRIPTOR, "keys/pb/v1/catalogue.proto", id="catalogue"),
    ],
)
def test_the_messages_keep_their_wire_package(descriptor: FileDescriptor, file_name: str) -> None:
    """Issue 17: moving the messages changes their home, not the wire: the proto
    package stays ``huxin.v1``, so full names (and Any type URLs) are unchanged."""
    assert descriptor.package == "huxin.v1"
    assert descriptor.name == file_name


def test_node_messages_embed_the_keys_messages() -> None:
    """Issue 17: node's own messages embed the one Envelope of keys.pb (node_pb2
    imports keys.pb.v1.attestation_pb2; there is no second copy under node.pb)."""
    from node.pb.v1 import node_pb2

    field = node_pb2.IncentiveCatalogue.DESCRIPTOR.fields_by_name["signed_catalogue"]
    assert field.message_type is attestation_pb2.Envelope.DESCRIPTOR
    assert "keys/pb/v1/attestation.proto" in [d.name for d in node_pb2.DESCRIPTOR.dependencies]
    signed = node_pb2.IncentiveCatalogue(signed_catalogue=attestation_pb2.Envelope(payload=b"x"))
    assert signed.signed_catalogue.payload == b"x"

"""What the demo's bank keeps for its offline check, and the command that reads it.

``huxin demo`` prints ``huxin verify`` command lines that must work when
pasted later, from any directory, after every node has stopped (docs/SPEC.md
section 10).  So everything such a command reads lives in one directory
(``<workdir>/verify/``, kept with ``huxin demo --keep DIR``), every path in it
is absolute, and the time of the check is given as ``--now``.

Invariant: the applicant's ID number (synthetic in the demo) is written only
to an owner-only file and reaches ``huxin verify`` as ``--subject-id-file``,
never as an argument (``ps``, shell history) and never in printed text.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["KeptInputs", "command_line", "keep_inputs", "verify_args", "verify_dir"]


@dataclass(frozen=True)
class KeptInputs:
    """The files every check reads, in the verify directory."""

    trust: Path  # the hub's trust bundle, as the bank received it
    hub_key: Path  # the hub root public key (hex text, as `huxin init federation` writes it)
    subject_id: Path  # the applicant's ID number, as the bank reads it from the card (0600)


def verify_dir(workdir: Path) -> Path:
    """The (absolute) directory of the bank's files, created if needed."""
    path = (workdir / "verify").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def keep_inputs(out: Path, bundle: Path, hub_key_file: Path, id_number: str) -> KeptInputs:
    """Copy the trust bundle and hub key into ``out`` and write the ID number file."""
    kept = KeptInputs(out / "trust.bundle", out / "hub.key", out / "subject-id")
    shutil.copyfile(bundle, kept.trust)
    shutil.copyfile(hub_key_file, kept.hub_key)
    fd = os.open(kept.subject_id, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(id_number + "\n")
    return kept


def verify_args(  # noqa: PLR0917 - one command's worth of inputs
    attestation: Path,
    kept: KeptInputs,
    audience: str,
    nonce: bytes,
    salt: bytes,
    statuses: list[Path],
    now: int,
) -> list[str]:
    """``huxin verify`` arguments that need nothing but the kept files: the bank's nonce,
    the binding salt the citizen handed over, the status lists held, the time of the check."""
    args = [
        "verify", str(attestation), "--trust", str(kept.trust), "--hub-key", str(kept.hub_key),
        "--audience", audience, "--nonce", "hex:" + nonce.hex(), "--salt", salt.hex(),
        "--subject-id-file", str(kept.subject_id),
    ]  # fmt: skip
    for path in statuses:
        args += ["--status", str(path)]
    return [*args, "--now", datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]


def command_line(args: list[str]) -> str:
    """The shell line a user pastes (quoted where a path needs it)."""
    return shlex.join(["huxin", *args])

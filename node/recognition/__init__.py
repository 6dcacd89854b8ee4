"""Governed mapping tables on the node (C3, H13, docs/adr/0207).

The tables a node maps grades with: those named in ``[mapping]`` of its config
and those installed with ``huxin mapping install`` (from a file, or from a
peer's ``ListMappings``), each with the approval records (批准或备案) signed by an
approving authority that make it usable for issuing.  Every table is verified
before use — hash, the signatures its method requires, invariants against the
two schemes at their exact versions, the reach floor — and every approval is
opened under the node's authorities; the mapper (:mod:`node.exchange._mapping`) uses only
an approved table bound to the scheme versions in force.

Modules: ``_verify`` (one table, one approval), ``_governed`` (the immutable set
the mapper swaps in), ``_coverage`` (tables a new version leaves
uncovered, for ``huxin model rollout``), ``_load`` (the verifier; config files and installed rows),
``_store`` (the SQL, migration 0014), ``_install`` (install, retire, a peer's
tables; it reaches the catalogue room: import it by module path,
``node.recognition._install``) and ``_cli`` (``huxin mapping install|list|retire``).
"""

from node.recognition._coverage import TableRef, node_tables, uncovered
from node.recognition._follow import FOLLOW_SECONDS, TablesFollower, listed_versions
from node.recognition._governed import Approved, Governed, GovernedSet, day_start
from node.recognition._load import ConfigPart, Verifier, authorities_of, config_part, governed_set
from node.recognition._store import InstalledRow, generation, installed_rows
from node.recognition._verify import TableRefused, VerifiedTable, known_schemes, table_sha256

__all__ = [
    "FOLLOW_SECONDS",
    "Approved",
    "ConfigPart",
    "Governed",
    "GovernedSet",
    "InstalledRow",
    "TableRef",
    "TableRefused",
    "TablesFollower",
    "VerifiedTable",
    "Verifier",
    "authorities_of",
    "config_part",
    "day_start",
    "generation",
    "governed_set",
    "installed_rows",
    "known_schemes",
    "listed_versions",
    "node_tables",
    "table_sha256",
    "uncovered",
]

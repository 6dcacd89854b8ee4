"""Issue 16 (H13: only approved tables are issued with; C3): the rollout warning's coverage.

``uncovered`` decides which tables a new scheme version leaves without coverage; an
unapproved table from the new version covers nothing (the mapper refuses it
``MAPPING_NOT_APPROVED``), so it is listed as "not approved".
"""

from __future__ import annotations

from node.recognition import TableRef, uncovered

OLD = TableRef("heihe-hainan", "1", "heihe@2025.1", "hainan@2025.1", "file")
NEW = TableRef("heihe-hainan", "2", "heihe@2026.1", "hainan@2025.1", "file", approved=False)


def test_an_unapproved_new_version_table_is_no_coverage() -> None:
    """Issue 16, H13, C3: with the approved heihe@2025.1 table and an unapproved one from
    heihe@2026.1 into the same target, the rollout to heihe@2026.1 leaves the old table
    uncovered and lists the new one as not approved."""
    got = uncovered([OLD, NEW], "heihe@2025.1", "heihe@2026.1")
    assert [(t.version, t.note) for t in got] == [("1", ""), ("2", "not approved")]
    assert got[1].to_json()["approved"] is False


def test_an_approved_new_version_table_covers_its_target() -> None:
    """Issue 16, H13, C3: once the heihe@2026.1 table is approved nothing is uncovered."""
    approved = TableRef(NEW.id, NEW.version, NEW.source, NEW.target, NEW.origin)
    assert uncovered([OLD, approved], "heihe@2025.1", "heihe@2026.1") == []

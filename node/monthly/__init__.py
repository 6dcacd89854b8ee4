"""Published monthly grades (H3) and their corrections after rights events (H16).

A grade leaves the node (attestation, self-query) as PUBLISHED: the newest
finished monthly run of the scheme version in force, with its ``period``, as
corrected since by rights events — never a live score stamped with the
unfinished month.  The node runs each month itself after it ends
(``[schedule]``), once; docs/adr/0514.

Storage (runs, entries, corrections, the scheduler's rows) is
:mod:`node.store._monthly`; modules: ``_published`` (the published grade, late publication, corrections), ``_explain``
(the explained report), ``_due`` (when a run is due), ``_selfquery``
(``GetMyScore``), ``_scheduler`` (the background run), ``_batch`` (scoring a whole
population into stored snapshots, in bulk) and ``_snapshots`` (signing a finished run
as Merkle batches for the hub, H3, H13).  The last two depend on
the population and rights rooms, which themselves use ``_published``: import
them by module path (``node.monthly._selfquery``, ``node.monthly._scheduler``).
"""

from node.monthly._due import due_at, due_period, next_due
from node.monthly._explain import score_result_proto
from node.monthly._published import (
    LATE,
    PUBLISHED_REASONS,
    Correction,
    correct_published,
    published_grade,
)
from node.store._monthly import (
    MonthKey,
    MonthlyRunRow,
    monthly_runs,
    newest_published,
    run_progress,
)

__all__ = [
    "LATE",
    "PUBLISHED_REASONS",
    "Correction",
    "MonthKey",
    "MonthlyRunRow",
    "correct_published",
    "due_at",
    "due_period",
    "monthly_runs",
    "newest_published",
    "next_due",
    "published_grade",
    "run_progress",
    "score_result_proto",
]

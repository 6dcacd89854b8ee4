"""The batch progress bar (node.cli._progress): what a long job shows on stderr.

REQ: H1, N1 (issue 15 §1: a city's file loads "with a progress bar in the CLI"
showing how far it is and how fast it goes).
"""

from __future__ import annotations

import io

from node.cli._progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_stream_gets_one_line_per_tenth_with_share_count_and_rate() -> None:
    """REQ: H1 — on a non-terminal one line per tenth of the work: the share, the
    count, the rate in the given unit per second, the elapsed seconds."""
    out = io.StringIO()
    bar = Progress(1000, "dept residence", out, unit="rows")
    for done in range(0, 1001, 50):
        bar.update(done)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0%, 10%, ..., 100%: every tenth once
    assert lines[0].startswith("dept residence [------------------------------]   0.0% 0/1,000 ")
    assert lines[-1].startswith(
        "dept residence [##############################] 100.0% 1,000/1,000 "
    )
    assert all(" rows/s " in line and line.endswith("s") for line in lines)


def test_terminal_redraws_in_place_and_ends_with_a_newline() -> None:
    """REQ: H1 — on a terminal the bar redraws on one line (carriage return) and the
    last draw ends the line; without a unit the rate reads "/s"."""
    out = _Tty()
    bar = Progress(4, "score", out)
    bar.update(4)
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rscore [")
    assert text.endswith("\n") and "\n" not in text[:-1]
    assert " 100.0% 4/4 " in text and " /s " in text


def test_empty_work_is_complete() -> None:
    """REQ: H1 — nothing to do shows 100% (no division by zero)."""
    out = io.StringIO()
    bar = Progress(0, "empty", out, unit="rows")
    bar.update(0)
    assert " 100.0% 0/0 0 rows/s " in out.getvalue()

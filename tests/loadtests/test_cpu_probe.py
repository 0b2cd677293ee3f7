"""loadtests.cpu_probe's reading of py-spy's collapsed stacks: one entry per function (its line
numbers merged), own time from the innermost frame, total time counted once per sample."""

from __future__ import annotations

from pathlib import Path

from loadtests.cpu_probe import _top


def test_collapsed_stacks_are_summed_per_function(tmp_path: Path) -> None:
    site = "/venv/lib/python3.11/site-packages"
    collapsed = tmp_path / "case.txt"
    collapsed.write_text(
        # A recursive frame appears twice in one stack: its total counts the samples once.
        f"handle ({site}/shopkeep_server/app.py:10)"
        ";dumps (/usr/lib/python3.11/json/__init__.py:5) 6\n"
        f"handle ({site}/shopkeep_server/app.py:12);handle ({site}/shopkeep_server/app.py:10)"
        f";execute ({site}/psycopg/cursor.py:99) 3\n"
        f"handle ({site}/shopkeep_server/app.py:11) 1\n"
    )
    lines = _top(collapsed)
    assert lines[0] == "  10 samples; own time:"
    assert lines[1:4] == [
        "     60.0%  dumps (json/__init__.py)",
        "     30.0%  execute (psycopg/cursor.py)",
        "     10.0%  handle (shopkeep_server/app.py)",
    ]
    assert lines[4:] == [
        "  total time of the store's own functions (with what they call):",
        "    100.0%  handle (shopkeep_server/app.py)",
    ]


def test_no_samples_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert _top(empty) == ["(no samples)"]

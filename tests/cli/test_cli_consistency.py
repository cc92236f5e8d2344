"""Issue #16's CLI rules that hold across commands: one table style, and
progress lines that never count above their total."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rich.console import Console

from postroom.cli import demo
from postroom.demo._report import Snapshot

CLI = Path(demo.__file__).resolve().parent


def test_every_table_has_the_one_style() -> None:
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Table"
            ):
                box = {k.arg: k.value for k in node.keywords}.get("box")
                style = box.id if isinstance(box, ast.Name) else None
                found.append((f"{path.name}:{node.lineno}", style))
    assert len(found) >= 6, found  # every listing, the history, bench, the demo
    assert [f for f in found if f[1] != "SIMPLE_HEAD"] == []


def test_demo_progress_never_counts_above_its_total() -> None:
    live = demo._Live(images=3)
    # Redeliveries (at least once) count past the totals: 4 of 3 uploads, 6 of 5
    # jobs ended, more in the gallery and webhooks than acked.
    snap = Snapshot(
        jobs=5, uploaded=4, ready=0, delayed=0, in_flight=0, dead=1, acked=5,
        retried=2, gallery=7, webhooks=6, events_pending=0,
    )  # fmt: skip
    with live:
        live.progress(snap)
    for task in live.bars.tasks:
        assert task.total is not None and task.completed <= task.total, task
    console = Console(record=True, width=100)
    console.print(live.bars)
    counts = re.findall(r"(\d+)/(\d+)", console.export_text())
    assert len(counts) == 4
    assert all(int(done) <= int(total) for done, total in counts), counts

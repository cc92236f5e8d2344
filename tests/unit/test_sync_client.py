"""The sync client's own thread: closing, and never keeping a process alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import postroom


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_unclosed_client_does_not_keep_the_process_alive(
    scheme: str, tmp_path: Path
) -> None:
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/x.db"
    script = (
        "import postroom\n"
        f"c = postroom.connect({url!r})\n"
        "c.send('q', {'n': 1})\n"
        "print(c.stats('q').ready)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    if scheme == "sqlite":
        with postroom.connect(url) as c:
            assert c.stats("q").ready == 1


def test_closed_client_says_so_and_closes_once() -> None:
    c = postroom.connect("memory://closed-client")
    c.close()
    c.close()
    with pytest.raises(postroom.ConfigurationError, match="closed"):
        c.send("q", 1)

"""mypy sees a handler's body type in ``send``/``send_async`` (docs/scheduling.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SNIPPET = """
import postroom
from pydantic import BaseModel

app = postroom.App("memory://")


class Job(BaseModel):
    n: int


@app.handler("jobs")
def handle(job: Job) -> int:
    return job.n


@app.subscriber("events", subscription="s")
async def on_event(event: str) -> None: ...


async def main() -> None:
    handle.send(Job(n=1), delay=5)
    await on_event.send_async("ok")
    handle(Job(n=2)) + 1
    handle.send(42)
    await on_event.send_async(b"bytes")
"""


def test_mypy_checks_the_body_type(tmp_path: Path) -> None:
    from mypy import api

    source = tmp_path / "typed_send.py"
    source.write_text(SNIPPET)
    cache = str(tmp_path / "cache")
    out, _, status = api.run(["--strict", "--cache-dir", cache, str(source)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, out
    assert len(errors) == 2, out
    assert '"send" of "Handler" has incompatible type "int"; expected "Job"' in out
    assert 'incompatible type "bytes"; expected "str"' in out

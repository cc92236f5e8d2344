"""The curl and Node examples in examples/http run against a real server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import Server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "http"


@pytest.mark.parametrize(
    "cmd", [["bash", "send_receive_ack.sh"], ["node", "send_receive_ack.mjs"]]
)
def test_example_sends_receives_and_acks(
    server: Server, http: httpx.Client, queue: str, cmd: list[str]
) -> None:
    proc = subprocess.run(
        [*cmd, server.base, queue],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("sent ")
    assert lines[1].endswith('attempt 1: {"image":"cat.png"}')
    assert lines[2] == "acked"
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["ready"], stats["in_flight"], stats["counters"]["acked"]) == (0, 0, 1)

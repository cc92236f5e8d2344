"""``postroom bench`` runs every workload end to end and reports numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

POSTROOM = [sys.executable, "-m", "postroom"]


@pytest.mark.slow
def test_bench_json_reports_every_workload() -> None:
    args = ["bench", "-n", "300", "--latency", "5", "--failing", "30", "--idle", "0.2"]
    out = subprocess.run(
        [*POSTROOM, *args, "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["url"].startswith("sqlite:///")
    assert r["drain_messages"] == 300
    assert r["latency_samples"] == 5
    for key in ("send_many_msg_s", "drain_msg_s", "fail_dead_letters_s"):
        assert r[key] > 0, key
    assert r["latency_p99_ms"] >= r["latency_p50_ms"] > 0


def test_bench_rejects_nonsense_sizes() -> None:
    out = subprocess.run(
        [*POSTROOM, "bench", "-n", "0"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "--messages must be >= 1" in out.stderr
    assert "Traceback" not in out.stderr

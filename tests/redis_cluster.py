"""A Redis Cluster of the test run's own: three primaries on free loopback ports,
started on first use and stopped by pid when the test process exits."""

from __future__ import annotations

import atexit
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

_NODES = 3
_ports: list[int] = []
_procs: list[subprocess.Popen[bytes]] = []


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """``n`` free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    for port in random.sample(range(20000, 30000), 200):
        if _is_free(port) and _is_free(port + 10000):
            ports.append(port)
            if len(ports) == n:
                return ports
    raise RuntimeError("no free ports for the test cluster in 20000-40000")


def _stop(root: Path) -> None:
    for proc in _procs:
        proc.send_signal(signal.SIGTERM)
    for proc in _procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    _procs.clear()
    shutil.rmtree(root, ignore_errors=True)


def _wait_ok(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if "cluster_state:ok" in out:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the test cluster's node {port} did not reach cluster_state:ok")


def cluster_port() -> int:
    """The port of one node of the running test cluster (started if need be)."""
    if _ports:
        return _ports[0]
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are needed (apt-get install redis)")
    root = Path(tempfile.mkdtemp(prefix="postroom-cluster-"))
    ports = _free_ports(_NODES)
    atexit.register(_stop, root)
    for port in ports:
        node = root / str(port)
        node.mkdir()
        command = [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node / "nodes.conf"),
            "--dir", str(node),
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        _procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 30
    for port in ports:
        while subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test cluster's node {port} did not start")
            time.sleep(0.05)
    subprocess.run(
        [
            "redis-cli", "--cluster", "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas", "0", "--cluster-yes",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    for port in ports:
        _wait_ok(port, deadline)
    _ports.extend(ports)
    return ports[0]


def cluster_ports() -> list[int]:
    """Every node's port (the cluster must be running)."""
    return list(_ports)

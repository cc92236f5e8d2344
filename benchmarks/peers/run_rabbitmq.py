"""postroom on RabbitMQ beside Dramatiq and Celery on the same broker.

Install the peers (not part of CI)::

    python -m venv /tmp/peers-amqp && /tmp/peers-amqp/bin/pip install \\
        -e '.[rabbitmq,redis]' 'dramatiq[rabbitmq]>=1.17' 'celery>=5.4' pyinstrument
    /tmp/peers-amqp/bin/python benchmarks/peers/run_rabbitmq.py [--quick]

The workloads are those of ``run.py`` (enqueue one by one and in bulk, drain by one
worker process, latency at 200 jobs/s, always-failing jobs), on the RabbitMQ of
127.0.0.1:5672; Dramatiq and Celery run with their defaults and tuned (larger
prefetch and more threads; Dramatiq's producer without publisher confirms). The
workers report to the harness through two keys in Redis database 11 (the probe's
one SET per workload), as in ``run.py``. Every queue a system made is deleted
before each workload. There is no per-message command count here (RabbitMQ has no
counter of AMQP methods without the management plugin): postroom's round trips
per message are counted from its code in docs/backends/rabbitmq.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aio_pika
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import RESULT_KEY, STARTED_KEY, Bench, median_row, table  # noqa: E402

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PROBE = "redis://127.0.0.1:6379/11"
SYSTEMS: dict[str, tuple[str, bool]] = {
    "postroom": ("bench_postroom", False),
    "dramatiq": ("bench_dramatiq_amqp", False),
    "dramatiq-tuned": ("bench_dramatiq_amqp", True),
    "celery": ("bench_celery_amqp", False),
    "celery-tuned": ("bench_celery_amqp", True),
}


class RabbitBench(Bench):
    """``run.Bench`` with the broker on RabbitMQ and the probe on Redis."""

    def __init__(self, name: str, sizes: dict[str, int]) -> None:
        module, tuned = SYSTEMS[name]
        os.environ["BENCH_TUNED"] = "1" if tuned else ""
        self.url = f"{AMQP}?prefix=bench" if module == "bench_postroom" else AMQP
        os.environ["BENCH_URL"] = self.url
        os.environ["BENCH_REDIS"] = PROBE
        mod = sys.modules.get(module)
        self.mod: Any = (
            importlib.reload(mod) if mod else importlib.import_module(module)
        )
        self.sizes = sizes
        self.redis = redis.Redis.from_url(PROBE)

    def flush(self) -> None:
        self.redis.delete(RESULT_KEY, STARTED_KEY)
        asyncio.run(self._delete_queues())

    async def _delete_queues(self) -> None:
        if self.mod.__name__ == "bench_postroom":
            from postroom.backends.rabbitmq import RabbitBackend

            backend = RabbitBackend(self.url)
            await backend.connect()
            try:
                await backend.delete_everything()
            finally:
                await backend.aclose()
            return
        conn = await aio_pika.connect(AMQP)
        async with conn:
            channel = await conn.channel()
            for name in self.mod.queues():
                await channel.queue_delete(name)

    def commands(self) -> int:
        return 0

    def start_worker(self, mode: str, target: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "BENCH_URL": self.url,
            "BENCH_REDIS": PROBE,
            "BENCH_MODE": mode,
            "BENCH_TARGET": str(target),
        }
        return subprocess.Popen(
            self.mod.worker_cmd(sys.executable),
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def main() -> None:
    """Run the chosen systems and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument(
        "--workloads", default="enqueue,drain,latency,failing", help="which to run"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = {"enqueue": 20_000, "drain": 20_000, "latency": 1_000, "failing": 2_000}
    if args.quick:
        sizes = {k: v // 10 for k, v in sizes.items()}
    rows = []
    for name in args.only.split(","):
        print(f"{name} ...", file=sys.stderr, flush=True)
        row = RabbitBench(name, sizes).run(set(args.workloads.split(",")))
        row["system"] = f"{row['system']} ({name})"
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(median_row([row]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows, sizes))


if __name__ == "__main__":
    main()

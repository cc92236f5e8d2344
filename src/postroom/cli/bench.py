"""``postroom bench``: measure a backend from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..bench import BenchSizes, run_bench
from ._common import Json, console, print_json, print_table

__all__ = ["TARGETS", "register"]

# The targets of the embedded backend on a 2-core machine (docs/benchmarks.md).
TARGETS: dict[str, tuple[str, float]] = {
    "send_many_msg_s": (">=", 50_000),
    "drain_msg_s": (">=", 10_000),
    "latency_p50_ms": ("<=", 5.0),
    "idle_cpu_percent": ("<", 1.0),
}

LABELS = [
    ("send_one_by_one_msg_s", "enqueue one by one (send)", "msg/s"),
    ("send_many_msg_s", "enqueue with send_many (1,000/call)", "msg/s"),
    ("drain_msg_s", "drain by one worker process", "msg/s"),
    ("latency_p50_ms", "end-to-end latency p50", "ms"),
    ("latency_p99_ms", "end-to-end latency p99", "ms"),
    ("latency_send_p50_ms", "  of which send until durable, p50", "ms"),
    ("latency_deliver_p50_ms", "  of which commit to handler, p50", "ms"),
    ("fail_dead_letters_s", "failure path (3 attempts each)", "dead/s"),
    ("fail_attempts_s", "failure path attempts", "attempts/s"),
    ("idle_cpu_percent", "idle worker CPU", "% core"),
]


def register(app: typer.Typer) -> None:
    """Add ``bench`` to ``app``."""
    app.command("bench")(bench)


def _meets(value: float, op: str, bound: float) -> bool:
    if op == ">=":
        return value >= bound
    if op == "<=":
        return value <= bound
    return value < bound


def results_table(r: dict[str, Any]) -> Table:
    """The results as a rich table, with the embedded backend's targets."""
    table = Table(title=f"postroom bench — {r['url']}", box=SIMPLE_HEAD)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target (SQLite, 2 cores)")
    for key, label, unit in LABELS:
        if key not in r:
            continue
        target = ""
        if key in TARGETS:
            op, bound = TARGETS[key]
            verdict = "ok" if _meets(r[key], op, bound) else "missed"
            target = f"{op} {bound:,g}  {verdict}"
        table.add_row(label, f"{r[key]:,.2f}", unit, target)
    return table


def bench(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Backend to measure (default: a fresh temporary SQLite file; "
            "POSTROOM_URL is ignored so that a real queue is never touched).",
        ),
    ] = None,
    messages: Annotated[
        int, typer.Option("--messages", "-n", help="Messages to enqueue and drain.")
    ] = 20_000,
    latency: Annotated[
        int, typer.Option("--latency", help="Single messages timed end to end.")
    ] = 200,
    failing: Annotated[
        int, typer.Option("--failing", help="Always-failing messages (3 attempts).")
    ] = 2_000,
    idle: Annotated[
        float, typer.Option("--idle", help="Seconds to measure the idle worker's CPU.")
    ] = 10.0,
    as_json: Json = False,
) -> None:
    """Measure enqueue, drain, latency, the failure path and idle CPU."""
    for name, value in (("--messages", messages), ("--latency", latency)):
        if value < 1:
            raise typer.BadParameter(f"{name} must be >= 1")
    sizes = BenchSizes(
        single=min(2_000, messages),
        drain=messages,
        latency=latency,
        fail=max(failing, 1),
        idle=idle,
    )
    if as_json:
        print_json(run_bench(url, sizes))
        return
    with console.status("starting") as status:
        results = run_bench(
            url, sizes, on_phase=lambda phase: status.update(f"measuring {phase}…")
        )
    print_table(results_table(results))
    load = results["load_average_1min"]
    console.print(
        f"{results['cpus']} CPUs, load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after"
    )

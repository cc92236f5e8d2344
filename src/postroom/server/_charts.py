"""The dashboard's charts: rates and depths over the samples' window, drawn on
the server as inline SVG (no script library).

Each chart is a ``<figure class="chart" data-chart="...">`` holding an SVG
with one ``<polyline>`` per unbroken run of each series (a gap where nothing was
sampled breaks the line), a legend with each series' last value, and one
transparent column per sample whose ``<title>`` is the tooltip with every value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from ..model.errors import NotSupported
from ..model.message import from_ms, now_ms
from ..model.samples import RATES, STEP_MS, STEP_SECONDS, WINDOW_MS, Point, series
from ._format import when
from ._routing import Ctx

__all__ = ["charts", "render_charts"]

WIDTH, HEIGHT = 560, 150
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 8, 20
COLORS = {
    "sent": "#1f5fbf",
    "acked": "#2e8b57",
    "retried": "#d08c00",
    "dead_lettered": "#b3261e",
    "ready": "#1f5fbf",
    "oldest_age": "#7b3fa0",
}
LABELS = {"dead_lettered": "dead-lettered", "oldest_age": "oldest age"}
NONE = "\N{EN DASH}"  # no value (as the tables show it)


@dataclass(frozen=True, slots=True)
class _Chart:
    key: str
    title: str
    unit: str
    series: tuple[str, ...]
    value: Callable[[Point, str], float | None]


def _rate(p: Point, name: str) -> float | None:
    return p.rates[name]


def _depth(p: Point, name: str) -> float | None:
    return float(p.ready) if name == "ready" else p.oldest_age


CHARTS = (
    _Chart("rates", "Messages per second", "/s", RATES, _rate),
    _Chart("ready", "Ready messages", "", ("ready",), _depth),
    _Chart("age", "Oldest message age", " s", ("oldest_age",), _depth),
)


def _nice(top: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above ``top``."""
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= top)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _runs(points: Sequence[Point], chart: _Chart, name: str) -> list[list[Point]]:
    """The unbroken runs of a series: split at a missing value or a gap."""
    runs: list[list[Point]] = []
    last: Point | None = None
    for p in points:
        if chart.value(p, name) is None:
            last = None
            continue
        if last is None or p.at_ms - last.at_ms > 3 * STEP_MS:
            runs.append([])
        runs[-1].append(p)
        last = p
    return runs


def _chart(points: Sequence[Point], chart: _Chart, now: int) -> Markup:
    start = now - WINDOW_MS
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for p in points for s in chart.series
              if (v := chart.value(p, s)) is not None]  # fmt: skip
    top = _nice(max(values, default=0.0))

    def x(at_ms: int) -> float:
        return LEFT + plot_w * (at_ms - start) / WINDOW_MS

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    out = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(chart.title)} over the last hour">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
        f"{_num(top)}</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">'
        "0</text>",
    ]
    for minutes in (60, 45, 30, 15, 0):
        at = now - minutes * 60_000
        label = f"-{minutes} min" if minutes else "now"
        anchor = "end" if not minutes else "start" if minutes == 60 else "middle"
        out.append(
            f'<text class="tick" x="{x(at):.1f}" y="{HEIGHT - 4}" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    for name in chart.series:
        out.append(f'<g data-series="{name}" stroke="{COLORS[name]}">')
        for run in _runs(points, chart, name):
            xy = " ".join(
                f"{x(p.at_ms):.1f},{y(chart.value(p, name) or 0.0):.1f}" for p in run
            )
            out.append(f'<polyline fill="none" stroke-width="1.5" points="{xy}"/>')
        out.append("</g>")
    width = max(plot_w * STEP_MS / WINDOW_MS, 1.0)
    for p in points:
        parts = [when(from_ms(p.at_ms))]
        for name in chart.series:
            value = chart.value(p, name)
            shown = NONE if value is None else _num(value) + chart.unit
            parts.append(f"{LABELS.get(name, name)} {shown}")
        out.append(
            f'<rect class="hover" x="{x(p.at_ms) - width / 2:.1f}" y="{TOP}" '
            f'width="{width:.1f}" height="{plot_h}"><title>'
            f"{escape(' · '.join(parts))}</title></rect>"
        )
    out.append("</svg>")
    legend = []
    for name in chart.series:
        latest = next(
            (v for p in reversed(points) if (v := chart.value(p, name)) is not None),
            None,
        )
        shown = NONE if latest is None else _num(latest) + chart.unit
        legend.append(
            f'<li data-series="{name}"><span class="swatch" style="background:'
            f'{COLORS[name]}"></span>{LABELS.get(name, name)} '
            f'<span class="last">{shown}</span></li>'
        )
    return Markup(
        f'<figure class="chart" data-chart="{chart.key}"><figcaption>'
        f"{escape(chart.title)}</figcaption>{''.join(out)}"
        f'<ul class="legend">{"".join(legend)}</ul></figure>'
    )


def render_charts(points: Sequence[Point], now: int) -> Markup:
    """The rate, ready and age charts of ``points`` over the window ending at
    ``now`` (ms)."""
    return Markup("").join(_chart(points, c, now) for c in CHARTS)


async def charts(ctx: Ctx, queue: str | None) -> Markup:
    """The charts of ``queue``, or of every queue the caller's token covers (their
    rates and ready messages summed, the oldest age of any); a line that says why
    when there is nothing to draw."""
    try:
        samples = await ctx.client.samples()
    except NotSupported as exc:
        return Markup('<p class="muted" id="no-charts">{}</p>').format(exc)
    if queue is not None:
        names = {queue}
    else:
        names = {q for s in samples for q in s.queues if ctx.visible(q)}
    points = series(samples, names)
    if not points:
        return Markup(
            '<p class="muted" id="no-charts">No samples yet: <code>postroom '
            "serve</code> and every worker take one every {} s.</p>"
        ).format(STEP_SECONDS)
    return render_charts(points, now_ms())

"""Simulation results as a table, JSON, or one self-contained HTML page (inline SVG plots,
no scripts or fonts fetched; one document for several scenarios, a section each): cost and
nodes over time per policy, pending pods over time (axes titled, with units and
gridlines), and the comparison table with each policy's cost as a ratio to Gibbous's where
both ran every pod."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence

from gibbous.simulation.engine import Result
from gibbous.simulation.scenario import Scenario

COLOURS = {
    "gibbous": "#1f6feb",
    "luna-rule": "#8250df",
    "karpenter-like": "#d1242f",
    "ca-like": "#bf8700",
    "static": "#57606a",
}
# Policies often draw the same curve (gibbous and luna-rule whenever no bin-pack node is
# chosen differently): dashes keep the one beneath visible.
DASHES = {"luna-rule": "7 5", "ca-like": "2 4", "static": "10 4 2 4"}
COLUMNS = (
    ("policy", "policy"),
    ("total_cost", "total $"),
    ("node_hours", "node-h"),
    ("pending_p50_s", "pending p50 s"),
    ("pending_p99_s", "pending p99 s"),
    ("pending_max_s", "pending max s"),
    ("never_ran", "never ran"),
    ("capacity_p99_s", "capacity p99 s"),
    ("evictions", "evictions"),
    ("interruptions", "interrupted"),
    ("peak_nodes", "peak nodes"),
    ("peak_gpus", "peak GPUs"),
    ("above_red_node_s", "above red node-s"),
    ("spot_share", "spot share"),
)


def table(results: Sequence[Result]) -> str:
    rows = [[label for _, label in COLUMNS]]
    for result in results:
        values = result.row()
        rows.append(["-" if values[key] is None else str(values[key]) for key, _ in COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for index, cells in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def as_json(scenario: Scenario, results: Sequence[Result]) -> str:
    return json.dumps(
        {
            "scenario": scenario.name,
            "description": scenario.description,
            "results": [{**r.row(), "samples": [s.__dict__ for s in r.samples]} for r in results],
        },
        indent=2,
    )


def _ticks(top: float, *, whole: bool = False) -> list[float]:
    """About four round steps from 0 to at least `top` (1, 2 or 5 times a power of ten;
    whole numbers only for counts)."""
    if top <= 0:
        return [0.0, 1.0]
    rough = top / 4
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    if whole:
        step = max(1.0, step)
    count = math.ceil(top / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _label(value: float) -> str:
    return f"{value:.4g}"


def _plot(title: str, y_title: str, results: Sequence[Result], value: str) -> str:
    """A line per policy over simulated time, with both axes titled and gridlines at each
    labelled tick."""
    width, height, left, bottom, top, right = 720, 270, 72, 48, 28, 16
    series = {r.policy: [(s.t_s, float(getattr(s, value))) for s in r.samples] for r in results}
    end = max((p[0] for points in series.values() for p in points), default=0.0) or 1.0
    y_ticks = _ticks(
        max((p[1] for points in series.values() for p in points), default=0.0),
        whole=value != "cost_per_hour",
    )
    peak = y_ticks[-1] or 1.0
    x_unit_h = end >= 1800  # hours on the time axis from half an hour, else minutes
    unit_s = 3600 if x_unit_h else 60
    x_ticks = [t * unit_s for t in _ticks(end / unit_s)]
    x_end = max(end, x_ticks[-1])
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + plot_w * t / x_end

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [
        f'<svg class="plot" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="16" class="title">{html.escape(title)}</text>',
    ]
    for tick in y_ticks:
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" stroke="#d0d7de"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="axis">{_label(tick)}</text>'
        )
    for tick in x_ticks:
        shown = tick / unit_s
        parts.append(
            f'<line class="grid" x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{top + plot_h}" stroke="#d0d7de"/>'
            f'<text x="{x(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="axis">{_label(shown)}</text>'
        )
    parts += [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#57606a"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#57606a"/>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis-title">simulated time ({"hours" if x_unit_h else "minutes"})</text>',
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" class="axis-title">{html.escape(y_title)}</text>',
    ]
    for policy, points in series.items():
        if not points:
            continue
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(points)
        )
        colour = COLOURS.get(policy, "#000")
        dash = f' stroke-dasharray="{DASHES[policy]}"' if policy in DASHES else ""
        parts.append(
            f'<path class="series" data-policy="{html.escape(policy)}" d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def cost_ratio(result: Result, baseline: Result | None) -> str:
    """The policy's $ over Gibbous's, or why there is none: a policy that left pods unrun
    spent less for less work, and its ratio would flatter it."""
    if baseline is None:
        return "-"
    if result.never_ran:
        return f"- ({result.never_ran} pods never ran)"
    if baseline.never_ran:
        return f"- (gibbous left {baseline.never_ran} pods unrun)"
    if not baseline.total_cost:
        return "-"
    return f"{result.total_cost / baseline.total_cost:.2f}"


def _section(scenario: Scenario, results: Sequence[Result]) -> str:
    baseline = next((r for r in results if r.policy == "gibbous"), None)
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    head += "<th>$ / gibbous $</th>" if baseline else ""
    body = []
    for result in results:
        row = result.row()
        cells = "".join(
            f"<td>{'-' if row[key] is None else html.escape(str(row[key]))}</td>"
            for key, _ in COLUMNS
        )
        if baseline:
            cells += f"<td>{html.escape(cost_ratio(result, baseline))}</td>"
        colour = COLOURS.get(result.policy, "#000")
        body.append(f'<tr style="border-left:6px solid {colour}">{cells}</tr>')
    legend = " ".join(
        f'<span class="key" style="color:{COLOURS.get(r.policy, "#000")}">&#9632; {html.escape(r.policy)}</span>'
        for r in results
    )
    plots = "".join(
        (
            _plot("Cost rate over time", "cost rate ($/hour)", results, "cost_per_hour"),
            _plot("Nodes over time", "nodes running", results, "nodes"),
            _plot("Pending pods over time", "pods pending", results, "pending"),
        )
    )
    seed = results[0].seed if results else 1
    return f"""<section id="{html.escape(scenario.name)}">
<h1>{html.escape(scenario.name)}</h1>
<p>{html.escape(scenario.description)}</p>
<p>{scenario.duration_s / 3600:.3g} simulated hours on the built-in {html.escape(scenario.cloud)} catalog; seed {seed}.</p>
<div class="legend">{legend}</div>
{plots}
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
</section>
"""


def html_report(pages: Sequence[tuple[Scenario, Sequence[Result]]]) -> str:
    """One self-contained HTML document for every scenario run, a section each."""
    title = ", ".join(scenario.name for scenario, _ in pages)
    contents = (
        "<nav><p>Scenarios: "
        + " · ".join(
            f'<a href="#{html.escape(s.name)}">{html.escape(s.name)}</a>' for s, _ in pages
        )
        + "</p></nav>"
        if len(pages) > 1
        else ""
    )
    sections = "".join(_section(scenario, results) for scenario, results in pages)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>gibbous simulate: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #d0d7de; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.title {{ font-size: 14px; font-weight: 600; }}
.axis {{ font-size: 11px; fill: #57606a; }}
.axis-title {{ font-size: 12px; fill: #1f2328; }}
.key {{ margin-right: 1em; font-weight: 600; }}
svg.plot {{ display: block; margin: 1em 0; }}
section {{ margin-bottom: 3em; }}
</style></head><body>
{contents}
{sections}
<p>pending: creation to running, per pod (pods never run count to the end); capacity: per
arrival, until its last pod ran; above red: node-seconds at or over the red threshold,
where workloads say what they use. No cost ratio is given for a policy that left pods
unrun (nor against a Gibbous run that did): it spent less because it did less.</p>
</body></html>
"""

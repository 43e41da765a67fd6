"""Simulation results as a table, JSON, or one self-contained HTML page (inline SVG plots,
no scripts or fonts fetched): cost and nodes over time per policy, pending pods over time,
and the comparison table with each policy's cost as a ratio to Gibbous's."""

from __future__ import annotations

import html
import json
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


def _plot(title: str, results: Sequence[Result], value: str, unit: str) -> str:
    width, height, left, bottom, top, right = 720, 240, 56, 28, 24, 12
    series = {r.policy: [(s.t_s, float(getattr(s, value))) for s in r.samples] for r in results}
    end = max((p[0] for points in series.values() for p in points), default=1.0) or 1.0
    peak = max((p[1] for points in series.values() for p in points), default=1.0) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + plot_w * t / end

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [
        f'<svg class="plot" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="16" class="title">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="axis">{peak:.4g}{html.escape(unit)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>',
    ]
    for fraction in (0.25, 0.5, 0.75, 1.0):
        t = end * fraction
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle" class="axis">{t / 3600:.3g}h</text>'
        )
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


def html_report(scenario: Scenario, results: Sequence[Result]) -> str:
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
            ratio = result.total_cost / baseline.total_cost if baseline.total_cost else float("nan")
            cells += f"<td>{ratio:.2f}</td>"
        colour = COLOURS.get(result.policy, "#000")
        body.append(f'<tr style="border-left:6px solid {colour}">{cells}</tr>')
    legend = " ".join(
        f'<span class="key" style="color:{COLOURS.get(r.policy, "#000")}">&#9632; {html.escape(r.policy)}</span>'
        for r in results
    )
    plots = "".join(
        (
            _plot("Cost rate over time ($/hr)", results, "cost_per_hour", "$/h"),
            _plot("Nodes over time", results, "nodes", ""),
            _plot("Pending pods over time", results, "pending", ""),
        )
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>gibbous simulate: {html.escape(scenario.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #d0d7de; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.title {{ font-size: 14px; font-weight: 600; }}
.axis {{ font-size: 11px; fill: #57606a; }}
.key {{ margin-right: 1em; font-weight: 600; }}
svg.plot {{ display: block; margin: 1em 0; }}
</style></head><body>
<h1>{html.escape(scenario.name)}</h1>
<p>{html.escape(scenario.description)}</p>
<p>{scenario.duration_s / 3600:.3g} simulated hours on the built-in {html.escape(scenario.cloud)} catalog; seed {results[0].seed if results else 1}.</p>
<div class="legend">{legend}</div>
{plots}
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
<p>pending: creation to running, per pod (pods never run count to the end); capacity: per
arrival, until its last pod ran; above red: node-seconds at or over the red threshold,
where workloads say what they use.</p>
</body></html>
"""

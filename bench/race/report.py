"""The race's results: per scenario, each system's runs, their medians and spread, and the
Gibbous/Karpenter ratios; as a table, as JSON and as one self-contained HTML document with
SVG plots (cost rate and nodes over time, every run of each system)."""

from __future__ import annotations

import html
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.race.metrics import (
    CAPACITY_TYPE,
    INSTANCE_TYPE,
    Observation,
    RunMetrics,
    Sample,
    ratio,
    spread,
)

SYSTEMS = ("gibbous", "karpenter")
COLOURS = {"gibbous": "#1a7f37", "karpenter": "#cf222e"}
METRICS = (
    ("cost", "$ over the run", "$"),
    ("boundP50", "bound p50", "s"),
    ("boundP99", "bound p99", "s"),
    ("boundMax", "bound max", "s"),
    ("nodesCreated", "nodes created", ""),
    ("nodesDeleted", "nodes deleted", ""),
    ("peakNodes", "peak nodes", ""),
    ("podsEvicted", "pods evicted", ""),
    ("podsUnbound", "pods unbound", ""),
    ("bootMedian", "boot p50", "s"),
)


@dataclass
class Run:
    system: str
    repetition: int
    order: int  # 0: this system ran first in its repetition
    metrics: RunMetrics
    boot_median_s: float | None
    observation: Observation | None = None  # the objects the metrics come from

    def row(self) -> dict[str, Any]:
        return {
            **self.metrics.row(),
            "bootMedian": None if self.boot_median_s is None else round(self.boot_median_s, 2),
            "repetition": self.repetition,
            "ranFirst": self.order == 0,
            "nodeTypes": self.node_types(),
        }

    def node_types(self) -> dict[str, int]:
        """Nodes launched, by `instance-type/capacity-type` label."""
        if self.observation is None:
            return {}
        counts = Counter(
            f"{n.labels.get(INSTANCE_TYPE, '?')}/{n.labels.get(CAPACITY_TYPE, '?')}"
            for n in self.observation.nodes.values()
        )
        return dict(sorted(counts.items()))


@dataclass
class ScenarioResult:
    name: str
    description: str
    pods: int
    duration_s: float
    boot_s: float
    runs: list[Run] = field(default_factory=list)

    def of(self, system: str) -> list[Run]:
        return [r for r in self.runs if r.system == system]

    def median(self, system: str, metric: str) -> float | None:
        return spread([r.row()[metric] for r in self.of(system)]).median

    def ratios(self, metric: str) -> list[float]:
        """Per repetition, Gibbous's value over Karpenter's."""
        out = []
        for gibbous in self.of("gibbous"):
            for karpenter in self.of("karpenter"):
                if karpenter.repetition == gibbous.repetition:
                    value = ratio(gibbous.row()[metric], karpenter.row()[metric])
                    if value is not None:
                        out.append(value)
        return out

    def left_pods_unbound(self) -> list[str]:
        return [s for s in SYSTEMS if any(r.metrics.pods_unbound for r in self.of(s))]

    def cost_ratio(self) -> float | None:
        """None when a system left pods unbound: its cost bought less."""
        if self.left_pods_unbound():
            return None
        return ratio(self.median("gibbous", "cost"), self.median("karpenter", "cost"))

    def bound_p99_ratio(self) -> float | None:
        return ratio(self.median("gibbous", "boundP99"), self.median("karpenter", "boundP99"))

    def as_json(self) -> dict[str, Any]:
        systems = {}
        for system in SYSTEMS:
            runs = [r.row() for r in self.of(system)]
            summary = {}
            for key, _, _ in METRICS:
                s = spread([row[key] for row in runs])
                summary[key] = {"median": s.median, "low": s.low, "high": s.high}
            systems[system] = {"runs": runs, "summary": summary}
        cost_ratios, p99_ratios = self.ratios("cost"), self.ratios("boundP99")
        return {
            "description": self.description,
            "pods": self.pods,
            "durationSeconds": self.duration_s,
            "bootSeconds": self.boot_s,
            "repetitions": len(self.of("gibbous")),
            **systems,
            "costRatio": _r(self.cost_ratio()),
            "costRatioRange": [_r(min(cost_ratios)), _r(max(cost_ratios))] if cost_ratios else None,
            "costRatioNote": (
                f"no cost ratio: {', '.join(self.left_pods_unbound())} left pods unbound"
                if self.left_pods_unbound()
                else ""
            ),
            "boundP99Ratio": _r(self.bound_p99_ratio()),
            "boundP99RatioRange": [_r(min(p99_ratios)), _r(max(p99_ratios))]
            if p99_ratios
            else None,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(results: Sequence[ScenarioResult]) -> str:
    head = ["scenario", "system", "runs", *(label for _, label, _ in METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        for system in SYSTEMS:
            runs = result.of(system)
            cells = [result.name, system, str(len(runs))]
            for key, _, _ in METRICS:
                s = spread([r.row()[key] for r in runs])
                text = _cell(s.median)
                if s.low is not None and s.high is not None and s.low != s.high:
                    text += f" ({_cell(s.low)}-{_cell(s.high)})"
                cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for result in results:
        costs, p99s = result.ratios("cost"), result.ratios("boundP99")
        cost = result.cost_ratio()
        cost_text = (
            f"{cost:.3f} (runs {min(costs):.3f}-{max(costs):.3f})"
            if cost is not None and costs
            else "- (" + (", ".join(result.left_pods_unbound()) + " left pods unbound)")
        )
        p99 = result.bound_p99_ratio()
        p99_text = f"{p99:.3f} (runs {min(p99s):.3f}-{max(p99s):.3f})" if p99 and p99s else "-"
        lines.append(
            f"{result.name}: cost Gibbous/Karpenter {cost_text}; bound p99 Gibbous/Karpenter {p99_text}"
        )
    return "\n".join(lines) + "\n"


def _plot(title: str, y_title: str, result: ScenarioResult, value: str, unit: str) -> str:
    width, height, left, bottom, top, right = 760, 280, 72, 48, 28, 16
    series = [
        (run, [(s.t_s, float(getattr(s, value))) for s in run.metrics.samples])
        for run in result.runs
    ]
    end = max((t for _, points in series for t, _ in points), default=1.0) or 1.0
    peak = max((v for _, points in series for _, v in points), default=1.0) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + plot_w * t / end

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [
        f'<svg class="plot" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="18" class="title">{html.escape(title)}</text>',
    ]
    for step in range(5):
        v = peak * step / 4
        parts.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="axis">{v:.3g}{html.escape(unit)}</text>'
        )
        t = end * step / 4
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + plot_h}" stroke="#eaeef2"/>'
            f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="axis">{t:.0f}</text>'
        )
    parts += [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" class="axis">time since the trace began (s)</text>',
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" class="axis" transform="rotate(-90 14 {top + plot_h / 2})">{html.escape(y_title)}</text>',
    ]
    for run, points in series:
        if not points:
            continue
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(points)
        )
        parts.append(
            f'<path class="series" data-system="{run.system}" data-repetition="{run.repetition}" d="{path}" fill="none" stroke="{COLOURS[run.system]}" stroke-width="1.5" stroke-opacity="0.8"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _section(result: ScenarioResult) -> str:
    rows = []
    for run in result.runs:
        row = run.row()
        cells = "".join(f"<td>{html.escape(_cell(row[key]))}</td>" for key, _, _ in METRICS)
        rows.append(
            f'<tr style="border-left:6px solid {COLOURS[run.system]}"><td>{run.system}</td>'
            f"<td>{run.repetition}</td><td>{'yes' if run.order == 0 else 'no'}</td>{cells}</tr>"
        )
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in METRICS)
    cost, p99 = result.cost_ratio(), result.bound_p99_ratio()
    unbound = result.left_pods_unbound()
    cost_text = (
        f"{cost:.3f}"
        if cost is not None
        else f"none ({html.escape(', '.join(unbound))} left pods unbound)"
    )
    return f"""<section>
<h2>{html.escape(result.name)}</h2>
<p>{html.escape(result.description)} {result.pods} pods created over {result.duration_s:.0f} s;
boot time {result.boot_s:g} s.</p>
<p><strong>Gibbous/Karpenter:</strong> cost {cost_text}; bound p99
{"-" if p99 is None else f"{p99:.3f}"} (medians over the runs).</p>
{_plot("Cost rate over time", "$ per hour", result, "cost_per_hour", "")}
{_plot("Nodes over time", "nodes", result, "nodes", "")}
<table><thead><tr><th>system</th><th>repetition</th><th>ran first</th>{head}</tr></thead>
<tbody>{"".join(rows)}</tbody></table>
</section>"""


def html_report(results: Sequence[ScenarioResult]) -> str:
    legend = " ".join(
        f'<span class="key" style="color:{COLOURS[s]}">&#9632; {s}</span>' for s in SYSTEMS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Gibbous against Karpenter</title>
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
<h1>Gibbous against Karpenter</h1>
<p>Each system on a fresh dev cluster per run; metrics from the API server's Node and Pod
objects only (bench/README.md). One line per run.</p>
<div class="legend">{legend}</div>
{"".join(_section(r) for r in results)}
</body></html>
"""


def boot_median(samples: Sequence[float]) -> float | None:
    return statistics.median(samples) if samples else None


__all__ = ["Run", "Sample", "ScenarioResult", "html_report", "table"]

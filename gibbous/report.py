"""Human-readable rendering of an estimate."""

from __future__ import annotations

from gibbous.core.planning.estimate import HOURS_PER_WEEK, EstimateReport


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render_estimate(report: EstimateReport) -> str:
    rows = [
        [
            "WORKLOAD",
            "KIND",
            "PODS",
            "CLASS",
            "INSTANCE TYPE",
            "CATEGORY",
            "$/HR/NODE",
            "NODES",
            "$/HR",
        ]
    ]
    for workload in report.workloads:
        name = f"{workload.namespace}/{workload.name}"
        if not workload.nodes:
            rows.append(
                [
                    name,
                    workload.kind,
                    str(workload.pods),
                    workload.placement,
                    "-",
                    "-",
                    "-",
                    "0",
                    "0.0000",
                ]
            )
        for index, line in enumerate(workload.nodes):
            rows.append(
                [
                    name if index == 0 else "",
                    workload.kind if index == 0 else "",
                    str(workload.pods) if index == 0 else "",
                    workload.placement if index == 0 else "",
                    line.instance_type,
                    line.price_category,
                    f"{line.price_per_hour:.4f}",
                    f"{line.count}{' (shared)' if line.shared else ''}",
                    f"{workload.cost_per_hour:.4f}" if index == 0 else "",
                ]
            )
    out = [f"Gibbous estimate: {report.cloud} {report.region} ({report.catalog})", ""]
    out.extend(_table(rows))
    out.append("")
    out.append(
        f"Cluster total: {len(report.nodes)} node(s), ${report.total_cost_per_hour:.4f}/hr "
        f"(${report.total_cost_per_hour * HOURS_PER_WEEK:.2f}/week)"
    )
    out.extend(_grown_disks(report))
    unsatisfiable = report.unsatisfiable
    if unsatisfiable:
        out.append("")
        out.append(f"Unsatisfiable pods ({len(unsatisfiable)}):")
        for owner, pod, reason in unsatisfiable:
            out.append(f"  {pod} ({owner}): {reason}")
    warned = [(w, message) for w in report.workloads for message in w.warnings]
    if warned:
        out.append("")
        out.append(
            f"Wrong-size nodes ({sum(1 for n in report.nodes if n.wrong_size)}): the cheapest "
            "fitting type is far larger than the pods ask; the catalog may lack a smaller shape"
        )
        for workload, message in warned:
            out.append(f"  {workload.namespace}/{workload.name}: {message}")
    if report.unsupported:
        out.append("")
        out.append(f"Unsupported pods ({len(report.unsupported)}): needs Gibbous cannot buy yet")
        for owner, pod, reason in report.unsupported:
            out.append(f"  {pod} ({owner}): {reason}")
    if report.notes:
        out.append("")
        out.append("Notes:")
        out.extend(f"  {note}" for note in report.notes)
    return "\n".join(out) + "\n"


def _grown_disks(report: EstimateReport) -> list[str]:
    """The nodes whose pods' ephemeral storage needs a larger disk than the configured one:
    the node is bought with that disk (and the disk is billed apart from the $/hr above)."""
    grown: dict[tuple[str, int], int] = {}
    for node in report.nodes:
        if node.disk_gib:
            key = (node.instance_type, node.disk_gib)
            grown[key] = grown.get(key, 0) + 1
    if not grown:
        return []
    lines = [
        "",
        f"Larger disks ({sum(grown.values())} node(s)): their pods' ephemeral storage needs more "
        f"than the configured {report.default_disk_gib} GiB; disk prices are not in the $/hr",
    ]
    for (instance_type, disk_gib), count in sorted(grown.items()):
        lines.append(f"  {count} x {instance_type}: {disk_gib} GiB")
    return lines

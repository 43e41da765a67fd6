"""`python -m bench.race [--scenarios NAME,...] [--trace FILE] [--repeat N]
[--output table|json] [--report FILE.html]`: race Gibbous against the real Karpenter."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.race.catalog import RaceCatalog, race_catalog
from bench.race.clusters import RaceCluster, RaceSetupError
from bench.race.metrics import compute
from bench.race.observe import Observer
from bench.race.replay import Replay, prepare
from bench.race.report import Run, ScenarioResult, boot_median, html_report, table
from bench.race.trace import SCENARIOS, Trace, TraceError, load_trace, scenario
from gibbous.devcluster.peers import Peers, PeersError, find_peers

SYSTEMS = ("gibbous", "karpenter")


def run_once(
    system: str,
    *,
    trace: Trace,
    catalog: RaceCatalog,
    peers: Peers,
    directory: Path,
    log: Callable[[str], None],
) -> tuple[Run, float]:
    """One system through one trace on a fresh cluster; (its metrics, wall seconds)."""
    began = time.monotonic()
    with RaceCluster(
        system, directory=directory, catalog=catalog, peers=peers, boot_s=trace.boot_s
    ) as cluster:
        assert cluster.api is not None
        prepare(cluster.api)
        start = time.monotonic() + 1.0
        observer = Observer(cluster.api, start)
        replay = Replay(cluster.api, trace, start)
        observer.begin()
        replay.begin()
        while time.monotonic() < start + trace.duration_s:
            cluster.check()
            if replay.errors:
                replay.join()
            time.sleep(min(2.0, max(0.0, start + trace.duration_s - time.monotonic())))
        replay.join()
        observation = observer.finish()
    metrics = compute(observation, catalog.price_table())
    boots = [
        n.ready_at - n.created_at for n in observation.nodes.values() if n.ready_at is not None
    ]
    log(
        f"  {system}: ${metrics.cost:.4f}, {metrics.pods_bound} pods bound "
        f"(p99 {metrics.bound_p99_s}), {metrics.pods_unbound} unbound, "
        f"{metrics.nodes_created} nodes ({time.monotonic() - began:.0f} s)"
    )
    return Run(system, 0, 0, metrics, boot_median(boots), observation), time.monotonic() - began


def race(
    traces: list[Trace],
    repeat: int,
    workdir: Path,
    log: Callable[[str], None],
    peers: Peers | None = None,
) -> list[ScenarioResult]:
    catalog = race_catalog()
    peers = peers or find_peers()
    results = []
    for trace in traces:
        result = ScenarioResult(
            trace.name, trace.description, trace.pods_created(), trace.duration_s, trace.boot_s
        )
        for repetition in range(repeat):
            order = SYSTEMS if repetition % 2 == 0 else SYSTEMS[::-1]
            for position, system in enumerate(order):
                log(f"{trace.name} #{repetition + 1}: {system}")
                directory = workdir / f"{trace.name}-{repetition}-{system}"
                run, _ = run_once(
                    system, trace=trace, catalog=catalog, peers=peers, directory=directory, log=log
                )
                run.repetition, run.order = repetition, position
                result.runs.append(run)
        results.append(result)
    return results


def provenance(root: Path) -> dict[str, object]:
    """What the numbers were measured on: the checkout's commit (`dirty` when it has changes
    git has not committed) and the machine, whose load other processes share: races on a
    busy machine boot and bind slower, so results name it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        commit, status = "", ""
    return {
        "commit": commit or None,
        "dirty": bool(status.strip()),
        "cpus": os.cpu_count(),
    }


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.race", description=__doc__)
    parser.add_argument(
        "--scenarios",
        default="posts,trickle,burst-scale-in",
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: posts,trickle,burst-scale-in)",
    )
    parser.add_argument(
        "--trace",
        action="append",
        default=[],
        metavar="FILE",
        help="a trace of your own (JSON, bench/README.md); repeatable",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions per scenario (default 3)"
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument("--report", metavar="FILE.html", help="also write the HTML report")
    parser.add_argument(
        "--workdir", metavar="DIR", help="where the clusters live (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        traces = (
            [scenario(name) for name in args.scenarios.split(",") if name] if args.scenarios else []
        )
        traces += [load_trace(Path(path)) for path in args.trace]
    except TraceError as error:
        parser.error(str(error))
    if not traces:
        parser.error("no scenario or trace to race")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    measured: dict[str, object] = provenance(Path(__file__).resolve().parents[2])
    load_at_start = load_average()
    try:
        if args.workdir:
            results = race(traces, args.repeat, Path(args.workdir), log)
        else:
            with tempfile.TemporaryDirectory(prefix="gibbous-race-") as workdir:
                results = race(traces, args.repeat, Path(workdir), log)
    except (PeersError, RaceSetupError) as error:
        print(f"bench.race: {error}", file=sys.stderr)
        return 2
    if args.output == "json":
        measured["loadAverage"] = {"start": load_at_start, "end": load_average()}
        document = {"measuredOn": measured, "scenarios": {r.name: r.as_json() for r in results}}
        print(json.dumps(document, indent=2))
    else:
        print(table(results), end="")
    if args.report:
        Path(args.report).write_text(html_report(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

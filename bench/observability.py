"""What `gibbous explain` and `gibbous status` cost at scale (`python -m bench.observability`).

The cluster of `bench.scale` (a control plane of the current release, no scheduler, pods
created bound: --nodes / --pods, default 5,000 / 50,000 of the fixture's Deployment-owned
pod) and, in the same run:

* the autoscaler's loop with its status writer on and off: an `AutoscalerService` in this
  process over one set of synced caches (and one autoscaler, its loop period 1 s),
  windows of --window seconds with and without a `StatusWriter` (the chart's default
  `--status-configmap`) in the order on, off, off, on, ..., timing every `step()`, every
  status hand-over (on the loop's thread, outside the step) and every document the
  writer's thread computes. Ratios are on/off within each pair of windows (median, mean,
  p90 and slowest step);
* then, as separate processes started afresh, interleaved --repeat times: the baseline
  `kubectl get pods -A -o json` (kubectl 1.34, as `gibbous.devcluster.installtools` caches
  it), `gibbous explain` of a bound pod and of a pending pod no instance type can take,
  `gibbous status`, and `gibbous --help` (the interpreter's and the CLI's start-up, the
  floor of every command); with --compare-source DIR also the explain of an earlier tree.
  Each command's output goes to /dev/null.

Target (issue #35): explain and status each at most 1.5 x the kubectl list of the same
cluster; the status object adds nothing measurable to the loop's step time.

Run: .venv/bin/python -m bench.observability [--nodes 5000] [--pods 50000] [--repeat 5]
     [--windows 4] [--window 30] [--dir DIR] [--compare-source DIR]
Filling the cluster takes about 13 minutes on a busy 2-core VM; with --dir the filled
control plane stays in DIR and a later run with the same --dir measures it again.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.scale import FIXTURE, NAMESPACE, SETTINGS, admin, make_nodes, make_pods, percentile
from gibbous.autoscaler.cloud.kwok import KwokCloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.autoscaler.process import AutoscalerService
from gibbous.autoscaler.statuswriter import StatusWriter
from gibbous.catalogs import load_catalog
from gibbous.core.settings.loader import build_config
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.installtools import helm_tools

STATUS_NAMESPACE, STATUS_NAME = "gibbous-system", "gibbous-autoscaler-status"
BOUND_POD = "llm-trainer-000001"
PENDING_POD = "no-type-meets"


class SyncedCaches:
    """The caches synced once for every window: the service neither starts nor stops them."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.cluster = cluster

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return bool(self.cluster.ready())


def timed(samples: list[float], function: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        started = time.perf_counter()
        try:
            return function()
        finally:
            samples.append((time.perf_counter() - started) * 1000)

    return run


def step_time(api: client.ApiClient, windows: int, window_s: float) -> list[dict[str, Any]]:
    """Windows alternating status writer on / off over the same caches and autoscaler."""
    cfg = build_config(dict(SETTINGS))
    cluster = KubeCluster(api)
    cluster.start()
    started = time.monotonic()
    cluster.wait_ready(900)
    print(f"caches synced ({time.monotonic() - started:.1f}s)", flush=True)
    provider = KwokCloudProvider(api, load_catalog(None, "aws", "us-west-2"), cfg, time.time)
    autoscaler = Autoscaler(cfg, provider, cluster, clock=time.time)
    lifecycle = NodeLifecycle(autoscaler, cluster, clock=time.time)
    autoscaler.step()  # every pod's facts computed once, in neither window
    lifecycle.step()
    # The writer's node views are built once per node version, as in a running autoscaler
    # (whose one writer lives as long as the process), not afresh in each window.
    warm = StatusWriter(cluster, cfg, STATUS_NAMESPACE, STATUS_NAME, clock=time.time)
    warm.offer(autoscaler.status_snapshot(), autoscaler.last_nodes)
    warm.write_pending()
    step = autoscaler.step
    results = []
    try:
        for index in range(2 * windows):
            # On, off, off, on, ...: each pair's two orders equally often, so a machine
            # getting busier or quieter during the run favours neither side.
            writer_on = index % 4 in (0, 3)
            writer = (
                StatusWriter(cluster, cfg, STATUS_NAMESPACE, STATUS_NAME, clock=time.time)
                if writer_on
                else None
            )
            if writer is not None:
                writer.views = warm.views
            service = AutoscalerService(
                autoscaler, SyncedCaches(cluster), lifecycle=lifecycle, status=writer
            )
            steps: list[float] = []
            publishes: list[float] = []
            writes: list[float] = []
            if writer is not None:
                writer.write_pending = timed(writes, writer.write_pending)  # type: ignore[method-assign]
            autoscaler.step = timed(steps, step)  # type: ignore[method-assign]
            service._publish_status = timed(publishes, service._publish_status)  # type: ignore[method-assign]
            service.start()
            time.sleep(window_s)
            service.stopped.set()
            if writer is not None:
                writer.stop()
            for thread in service.threads:
                thread.join(timeout=30)
            results.append(
                {
                    "writer": writer_on,
                    "steps": len(steps),
                    "step_p50_ms": statistics.median(steps),
                    "step_max_ms": max(steps),
                    "step_p90_ms": percentile(steps, 0.9),
                    "step_mean_ms": statistics.fmean(steps),
                    "publish_max_ms": max(publishes) if writer_on else 0.0,
                    "writes": writer.writes if writer is not None else 0,
                    # The writer's thread: the document computed (and written when changed).
                    "writer_max_ms": max(writes) if writes else 0.0,
                }
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        autoscaler.step = step  # type: ignore[method-assign]
        cluster.stop()
    return results


def run_seconds(argv: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of the command. On a machine shared
    with other work the CPU time is the steadier of the two; neither counts the API
    server's own work for the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in ok:
        raise RuntimeError(f"{argv} exited {result.returncode}: {result.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def command_times(
    kubeconfig: str, repeat: int, compare_source: str | None
) -> dict[str, list[tuple[float, float]]]:
    kubectl = str(helm_tools().kubectl)
    gibbous = [sys.executable, "-m", "gibbous"]
    commands: dict[str, tuple[list[str], tuple[int, ...]]] = {
        "kubectl get pods -A -o json": (
            [kubectl, "--kubeconfig", kubeconfig, "get", "pods", "-A", "-o", "json"],
            (0,),
        ),
        "gibbous explain (bound pod)": (
            [*gibbous, "explain", BOUND_POD, "-n", NAMESPACE, "--kubeconfig", kubeconfig],
            (0,),
        ),
        "gibbous explain (pending pod)": (
            [*gibbous, "explain", PENDING_POD, "-n", NAMESPACE, "--kubeconfig", kubeconfig],
            (0,),
        ),
        # 3: the status object is stale (the loop measured above has stopped); it is read
        # and shown all the same.
        "gibbous status": ([*gibbous, "status", "--kubeconfig", kubeconfig], (0, 3)),
        "gibbous --help": ([*gibbous, "--help"], (0,)),
    }
    if compare_source:
        # Run from the earlier tree: `python -m` puts the working directory first on the path.
        earlier = ["env", "-C", compare_source, *gibbous]
        commands["gibbous explain (bound pod), earlier source"] = (
            [*earlier, "explain", BOUND_POD, "-n", NAMESPACE, "--kubeconfig", kubeconfig],
            (0,),
        )
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for round_ in range(repeat):
        for name, (argv, ok) in commands.items():
            times[name].append(run_seconds(argv, ok))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{k} {v[-1][0]:.2f}s (CPU {v[-1][1]:.2f}s)" for k, v in times.items()),
            flush=True,
        )
    return times


def create_pending_pod(api: client.ApiClient) -> None:
    """A managed pod whose selector no instance type meets."""
    body = json.loads(FIXTURE.read_text())["request"]["object"]
    body.pop("status", None)
    body["metadata"] = {
        "name": PENDING_POD,
        "namespace": NAMESPACE,
        "labels": body["metadata"]["labels"],
    }
    body["spec"]["nodeSelector"] = {"node.kubernetes.io/instance-type": "no-such-type"}
    client.CoreV1Api(api).create_namespaced_pod(NAMESPACE, body)


def fill(api: client.ApiClient, nodes: int, pods: int) -> None:
    core = client.CoreV1Api(api)
    for namespace in (NAMESPACE, STATUS_NAMESPACE):
        core.create_namespace({"metadata": {"name": namespace}})
        # No controller manager runs here to make it; pods need their service account.
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
    started = time.monotonic()
    make_nodes(api, 0, nodes)
    make_pods(api, 0, pods, nodes)
    create_pending_pod(api)
    print(f"{nodes} nodes / {pods} pods created ({time.monotonic() - started:.0f}s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=50000)
    parser.add_argument(
        "--repeat", type=int, default=5, help="rounds of the commands (0: the loop alone)"
    )
    parser.add_argument(
        "--windows", type=int, default=4, help="on/off pairs of loop windows (0: none)"
    )
    parser.add_argument("--window", type=float, default=30.0, help="seconds per loop window")
    parser.add_argument(
        "--dir",
        help="control plane directory (default: a temporary one); one a previous run filled "
        "is used as it is (its etcd keeps the cluster), skipping the hour's fill",
    )
    parser.add_argument(
        "--compare-source",
        metavar="DIR",
        help="also time `gibbous explain` of the Gibbous source tree in DIR (an earlier "
        "version, e.g. from `git archive`), in the same rounds",
    )
    args = parser.parse_args()
    directory = Path(args.dir or tempfile.mkdtemp(prefix="gibbous-observability-"))
    filled = (directory / "plane" / "etcd").is_dir()
    plane = ControlPlane(find_binaries(release="current"), directory / "plane")
    plane.start(controller_manager=False)
    try:
        api = admin(plane)
        if not filled:
            fill(api, args.nodes, args.pods)
        windows = step_time(api, args.windows, args.window) if args.windows else []
        times = (
            command_times(str(plane.kubeconfig), args.repeat, args.compare_source)
            if args.repeat
            else {}
        )
    finally:
        plane.stop()
    report(args.nodes, args.pods, windows, times)


def report(
    nodes: int,
    pods: int,
    windows: list[dict[str, Any]],
    times: dict[str, list[tuple[float, float]]],
) -> None:
    print(f"\n{nodes:,} nodes / {pods:,} pods\n")
    if windows:
        report_windows(windows)
    if not times:
        return
    base = times["kubectl get pods -A -o json"]
    print("| command | wall s | x kubectl (per round) | CPU s | CPU x kubectl (per round) |")
    print("|---|---:|---:|---:|---:|")

    def span(values: list[float]) -> str:
        return f"{min(values):.2f}-{max(values):.2f}"

    for name, values in times.items():
        wall = [w for w, _ in values]
        cpu = [c for _, c in values]
        print(
            f"| {name} | {span(wall)} | "
            f"{span([w / b[0] for w, b in zip(wall, base, strict=True)])} | {span(cpu)} | "
            f"{span([c / b[1] for c, b in zip(cpu, base, strict=True)])} |"
        )


def report_windows(windows: list[dict[str, Any]]) -> None:
    print(
        "| window | writer | steps | step p50 ms | p90 ms | max ms | mean ms | "
        "hand-over max ms | writer thread max ms | writes |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for index, window in enumerate(windows):
        print(
            f"| {index + 1} | {'on' if window['writer'] else 'off'} | {window['steps']} | "
            f"{window['step_p50_ms']:.1f} | {window['step_p90_ms']:.1f} | "
            f"{window['step_max_ms']:.1f} | {window['step_mean_ms']:.1f} | "
            f"{window['publish_max_ms']:.2f} | {window['writer_max_ms']:.1f} | "
            f"{window['writes']} |"
        )
    pairs = [
        (first, second) if first["writer"] else (second, first)
        for first, second in zip(windows[::2], windows[1::2], strict=True)
    ]
    for measure in ("step_p50_ms", "step_mean_ms", "step_p90_ms", "step_max_ms"):
        ratios = [on[measure] / off[measure] for on, off in pairs]
        print(f"step {measure[5:-3]} on/off per pair: {min(ratios):.2f}-{max(ratios):.2f}x")
    print()


if __name__ == "__main__":
    main()

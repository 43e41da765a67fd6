"""B5-B7 through `gibbous simulate` (python -m bench.simulate): every number a ratio to a
baseline run in the same process on the same seeded scenario.

B5  spot-tolerant mix: Gibbous's $ with spot allowed / Gibbous's $ all on-demand (and the
    Karpenter-like policy's ratio to the same baseline), over seeds that move the arrivals
    and which spot nodes are interrupted.
B6  a 100-pod burst: time to capacity (until the burst's last pod runs) for each policy,
    and each policy's ratio to the CA-like policy's.
B7  hot nodes: node-seconds above red and node-hours, Gibbous with hot-node mitigation /
    Gibbous without it, with scale-down by usage (the default) and by requests alone
    (`scaleDown.binPackNodeUsageThreshold: 0.0`, Gibbous before issue #34), on the
    workload usage clock and on the pod clock. The model has no processor sharing: a
    node's use may exceed its capacity, and then it simply counts as above red.

`python -m bench.simulate --only B7` runs one part.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from typing import Any

from gibbous.simulation.engine import Result, run
from gibbous.simulation.scenario import Scenario, parse_scenario

SEEDS = (1, 2, 3, 4, 5)


def _pod(cpu: str, memory: str, *, gpus: int = 0, app: str, spot: bool = False) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    spec: dict[str, Any] = {"containers": [{"name": app, "resources": {"requests": requests}}]}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
        spec["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": str(gpus)}
    metadata: dict[str, Any] = {"labels": {"elotl-luna": "true", "app": app}}
    if spot:
        metadata["annotations"] = {"node.elotl.co/instance-offerings": "spot,on-demand"}
        spec["tolerations"] = [
            {"key": "gibbous.dev/capacity-type", "operator": "Equal", "value": "spot",
             "effect": "NoSchedule"}
        ]  # fmt: skip
    return {"metadata": metadata, "spec": spec}


def spot_mix(seed: int, *, spot: bool) -> Scenario:
    rng = random.Random(seed)
    workloads = []
    for index in range(6):
        workloads.append(
            {
                "name": f"train-{index}",
                "at": f"{rng.randint(0, 240)}m",
                "count": 1,
                "runFor": f"{rng.randint(90, 240)}m",
                "replace": True,
                "pod": _pod("8", "32Gi", gpus=1, app="train", spot=spot),
            }
        )
    for index in range(4):
        workloads.append(
            {
                "name": f"batch-{index}",
                "at": f"{rng.randint(0, 360)}m",
                "count": 8,
                "runFor": f"{rng.randint(30, 120)}m",
                "replace": True,
                "pod": _pod("3", "8Gi", app="batch", spot=spot),
            }
        )
    events = [
        {"at": f"{rng.randint(30, 460)}m", "interrupt": {"category": "spot", "count": 1}}
        for _ in range(4)
    ]
    return parse_scenario(
        {"name": f"b5-spot-mix-{seed}", "cloud": "aws", "duration": "8h",
         "workloads": workloads, "events": events},
        "b5",
    )  # fmt: skip


def burst(seed: int) -> Scenario:
    rng = random.Random(seed)
    return parse_scenario(
        {
            "name": f"b6-burst-{seed}",
            "cloud": "aws",
            "duration": "30m",
            "bootTime": f"{rng.randint(30, 40)}s",
            "workloads": [
                {"name": "burst", "at": f"{rng.randint(0, 30)}s", "count": 100, "replace": False,
                 "pod": _pod(rng.choice(["250m", "500m", "1"]), "512Mi", app="burst")}
            ],
        },
        "b6",
    )  # fmt: skip


def hot(seed: int, *, mitigation: bool, by_usage: bool = True, clock: str = "workload") -> Scenario:
    rng = random.Random(seed)
    workloads = []
    # Requests that fill about four 8-CPU nodes; real use from 0.7x to 1.6x the requests,
    # so that without mitigation some nodes run above red and most do not (B7's tuning:
    # 10-30 % of nodes hot).
    for index in range(8):
        base = rng.choice([1000, 1200, 1400])
        peak = rng.choice([1800, 2200, 2600, 3000])
        workloads.append(
            {
                "name": f"worker-{index}",
                "at": f"{index}m",
                "count": 2,
                "pod": _pod("1500m", "2Gi", app="worker"),
                "usageClock": clock,
                "usage": [
                    {"after": "0s", "cpu": f"{base}m", "memory": "800Mi"},
                    {"after": f"{rng.randint(5, 30)}m", "cpu": f"{peak}m", "memory": "1Gi"},
                    {"after": f"{rng.randint(60, 120)}m", "cpu": f"{base}m", "memory": "800Mi"},
                ],
            }
        )
    return parse_scenario(
        {
            "name": f"b7-hot-{seed}",
            "cloud": "azure",
            "duration": "3h",
            "config": {
                "binPackingNodeCpu": "8",
                "binPackingNodeMemory": "16Gi",
                "scaleDown": {
                    "binPackNodeUtilizationThreshold": 0.0,
                    **({} if by_usage else {"binPackNodeUsageThreshold": 0.0}),
                },
                "manageHighUtilization": {"enabled": mitigation, "loopPeriod": "30s"},
            },
            "workloads": workloads,
        },
        "b7",
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def b5() -> None:
    print("## B5: spot-tolerant mix, $ / Gibbous all on-demand $ (8 h, 4 interruptions)\n")
    print(
        "| seed | gibbous all-OD $ | gibbous spot $ | ratio | karpenter-like spot $ | ratio | interruptions |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    b5: dict[str, list[float]] = {"gibbous": [], "karpenter-like": []}
    for seed in SEEDS:
        baseline = run(spot_mix(seed, spot=False), "gibbous", seed=seed)
        ours = run(spot_mix(seed, spot=True), "gibbous", seed=seed)
        peer = run(spot_mix(seed, spot=True), "karpenter-like", seed=seed)
        assert baseline.never_ran == 0 and ours.never_ran == 0, (seed, baseline.row(), ours.row())
        b5["gibbous"].append(ours.total_cost / baseline.total_cost)
        b5["karpenter-like"].append(peer.total_cost / baseline.total_cost)
        print(
            f"| {seed} | {baseline.total_cost:.2f} | {ours.total_cost:.2f} | "
            f"{b5['gibbous'][-1]:.3f} | {peer.total_cost:.2f} | {b5['karpenter-like'][-1]:.3f} | "
            f"{ours.interruptions} |"
        )
    print(f"\nmedian ratio: gibbous {_median(b5['gibbous']):.3f}, karpenter-like "
          f"{_median(b5['karpenter-like']):.3f}\n")  # fmt: skip


def b6() -> None:
    print("## B6: 100-pod burst, time to capacity (s) and ratio to ca-like\n")
    policies = ("gibbous", "luna-rule", "karpenter-like", "ca-like", "static")
    print("| seed | " + " | ".join(policies) + " |")
    print("|---:|" + "---:|" * len(policies))
    b6: dict[str, list[float]] = {p: [] for p in policies}
    for seed in SEEDS:
        results: dict[str, Result] = {p: run(burst(seed), p, seed=seed) for p in policies}
        for policy, result in results.items():
            b6[policy].append(result.capacity_p99_s)
        print(
            f"| {seed} | " + " | ".join(f"{results[p].capacity_p99_s:.0f}" for p in policies) + " |"
        )
    print("\nmedian time to capacity / ca-like's: " + ", ".join(
        f"{p} {_median(b6[p]) / _median(b6['ca-like']):.2f}" for p in policies
    ) + "\n")  # fmt: skip


def _b7_run(seed: int, clock: str) -> tuple[Result, Result, Result]:
    """Without mitigation; with it and scale-down by requests; with it and by usage."""
    without = run(hot(seed, mitigation=False, clock=clock), "gibbous", seed=seed)
    by_requests = run(hot(seed, mitigation=True, by_usage=False, clock=clock), "gibbous", seed=seed)
    with_ = run(hot(seed, mitigation=True, clock=clock), "gibbous", seed=seed)
    return without, by_requests, with_


def b7() -> None:
    print("## B7: hot nodes, Gibbous with hot-node mitigation / without (3 h)\n")
    print(
        "Workload usage clock. `req`: scale-down by requests alone (before issue #34); "
        "`usage`: scale-down by usage (the default with mitigation on).\n"
    )
    print(
        "| seed | above red node-s without | req | usage | ratio | node-h without | req "
        "| ratio | usage | ratio | evictions req | usage |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    red: dict[str, list[float]] = {"req": [], "usage": []}
    hours: dict[str, list[float]] = {"req": [], "usage": []}
    for seed in SEEDS:
        without, by_requests, with_ = _b7_run(seed, "workload")
        base_red = without.above_red_node_s or 0.0
        for key, result in (("req", by_requests), ("usage", with_)):
            red[key].append((result.above_red_node_s or 0.0) / base_red if base_red else math.nan)
            hours[key].append(result.node_hours / without.node_hours)
        cells = [
            f"{seed}",
            f"{base_red:.0f}",
            f"{by_requests.above_red_node_s or 0.0:.0f}",
            f"{with_.above_red_node_s or 0.0:.0f}",
            f"{red['usage'][-1]:.3f}",
            f"{without.node_hours:.2f}",
            f"{by_requests.node_hours:.2f}",
            f"{hours['req'][-1]:.3f}",
            f"{with_.node_hours:.2f}",
            f"{hours['usage'][-1]:.3f}",
            f"{by_requests.evictions}",
            f"{with_.evictions}",
        ]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nmedian, by usage: time above red {_median(red['usage']):.3f}x, node-hours "
        f"{_median(hours['usage']):.3f}x; by requests: {_median(red['req']):.3f}x, "
        f"{_median(hours['req']):.3f}x\n"
    )
    pod_red: dict[str, list[float]] = {"req": [], "usage": []}
    pod_hours: dict[str, list[float]] = {"req": [], "usage": []}
    for seed in SEEDS:
        without, by_requests, with_ = _b7_run(seed, "pod")
        base_red = without.above_red_node_s or 0.0
        for key, result in (("req", by_requests), ("usage", with_)):
            pod_red[key].append(
                (result.above_red_node_s or 0.0) / base_red if base_red else math.nan
            )
            pod_hours[key].append(result.node_hours / without.node_hours)
    print(
        f"Pod usage clock (a replacement starts its profile afresh), median: by usage "
        f"{_median(pod_red['usage']):.3f}x above red, {_median(pod_hours['usage']):.3f}x "
        f"node-hours; by requests {_median(pod_red['req']):.3f}x, "
        f"{_median(pod_hours['req']):.3f}x\n"
    )


PARTS = {"B5": b5, "B6": b6, "B7": b7}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=sorted(PARTS), help="run only this part (repeatable)"
    )
    arguments = parser.parse_args(argv)
    started = time.perf_counter()
    for name in arguments.only or sorted(PARTS):
        PARTS[name]()
    print(f"(bench wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

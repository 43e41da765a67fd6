"""Planning throughput: pods/s of Gibbous's simulator vs the reference FFD, same run, same pods.

Run: .venv/bin/python -m bench.planning [--sizes 1000,5000,10000,20000] [--repeat 5]
Prints one line per size: times are medians of the repeats; the speed ratio (reference
time / Gibbous time, > 1 when Gibbous is faster) is the range, min-max, of the ratios of
the repeats, each measured back to back, since it moves with the machine and between runs;
the cost ratio and node count are the same on every run and machine (seeded input).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from bench.reference import reference_ffd
from bench.workloads import diverse_pods
from gibbous.catalogs import load_catalog
from gibbous.core.choice.selection import build_offers
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.settings.loader import build_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,5000,10000,20000")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="runs per size; the speed ratio is given as min-max over them (default 5)",
    )
    parser.add_argument(
        "--reference-limit", type=int, default=20000, help="skip the reference above this size"
    )
    args = parser.parse_args()
    config = build_config()
    offers = build_offers(load_catalog(None, "aws", "us-west-2"), config)
    print(
        f"{'pods':>6} {'parse ms':>9} {'plan ms':>9} {'plan pods/s':>12} {'ref ms':>9} "
        f"{'speed ratio min-max':>19} {'cost ratio':>10} {'nodes':>6}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        raw = diverse_pods(size)
        parse_times, plan_times, ref_times = [], [], []
        plan = None
        reference = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            pods = [describe_pod(p, config)[0] for p in raw]
            parse_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            plan = simulate(pods, offers, config)
            plan_times.append(time.perf_counter() - start)
            if size <= args.reference_limit:
                start = time.perf_counter()
                reference = reference_ffd(pods, offers)
                ref_times.append(time.perf_counter() - start)
        assert plan is not None
        placed = sum(len(n.pods) for n in plan.new_nodes)
        if placed + len(plan.unschedulable) != size:
            raise SystemExit("invalid run: pods lost")
        plan_s = statistics.median(plan_times)
        ref_s = statistics.median(ref_times) if ref_times else math.nan
        ref_cost = math.fsum(o.price for o, _ in reference) if reference else math.nan
        print(
            f"{size:>6} {statistics.median(parse_times) * 1000:>9.1f} {plan_s * 1000:>9.1f} {size / plan_s:>12.0f} "
            f"{ref_s * 1000:>9.1f} {speed_ratio_range(ref_times, plan_times):>19} "
            f"{plan.cost_per_hour / ref_cost:>10.3f} {len(plan.new_nodes):>6}"
        )


def speed_ratio_range(reference_times: list[float], plan_times: list[float]) -> str:
    """`1.52-1.81x`: the lowest and highest reference/Gibbous time ratio of the runs, each
    run's two timings taken back to back (so a drift of the machine's speed between runs
    widens the range rather than skewing one side); `-` without reference runs."""
    if not reference_times:
        return "-"
    ratios = [ref / plan for ref, plan in zip(reference_times, plan_times, strict=True)]
    return f"{min(ratios):.2f}-{max(ratios):.2f}x"


if __name__ == "__main__":
    main()

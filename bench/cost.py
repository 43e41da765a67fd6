"""Cost quality of bin-pack planning: Gibbous vs the exact optimum (small mixes) and vs the
fluid LP lower bound (large mixes), same pods, same candidate node types, same run.

The optimum is taken under the same rules Gibbous obeys: every node meets the bin-pack
node spec and comes from the catalog (any mix of types is allowed to the optimum; Gibbous
uses one type per plan). Solved with HiGHS (scipy.optimize.milp / linprog).

Nothing restricts the optimum: it may use every spec-meeting type (less the dominated
ones: a type with no more capacity in any dimension at no lower price than another is never
needed), and as many nodes as could possibly pay off (an optimal plan costs at most what
Gibbous's costs, and every node costs at least the cheapest type, so it has at most
floor(Gibbous $ / cheapest $) nodes, and at most one per pod). A seed the solver cannot
finish within the time limit is reported with the proven lower bound, never dropped.

Run: .venv/bin/python -m bench.cost [--small 20] [--seeds 10] [--large 1000,10000]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from bench.workloads import small_pods
from gibbous.catalogs import load_catalog
from gibbous.core.choice.selection import Offer, build_offers, cheapest_offer_for_shape
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config


def shapes(offers: list[Offer], config: Config) -> list[Offer]:
    result = cheapest_offer_for_shape(
        offers,
        cpu_millis=config.bin_pack_node_cpu_millis,
        memory_bytes=config.bin_pack_node_memory_bytes,
        gpus=0,
        config=config,
        categories=config.bin_pack_node_pricing,
        affinity=NodeAffinity(()),
    )
    return list(result.offers)


def vectors(pods: list[PendingPod]) -> np.ndarray:
    return np.array(
        [
            [
                p.requirement.requests.cpu_millis,
                p.requirement.requests.memory_bytes / 2**20,
                p.requirement.requests.pods,
            ]
            for p in pods
        ],
        dtype=float,
    )


def capacity(offer: Offer) -> np.ndarray:
    a = offer.allocatable
    return np.array([a.cpu_millis, a.memory_bytes / 2**20, a.pods], dtype=float)


def undominated(types: list[Offer]) -> list[Offer]:
    """Types not dominated by another (at least the capacity in every dimension, at no
    higher price, and not identical): an optimal plan never needs a dominated type."""
    kept = []
    for offer in types:
        cap = capacity(offer)
        dominated = any(
            other is not offer
            and other.price <= offer.price
            and bool(np.all(capacity(other) >= cap))
            and (other.price < offer.price or bool(np.any(capacity(other) > cap)))
            for other in types
        )
        if not dominated:
            kept.append(offer)
    return kept


def exact_optimum(
    pods: list[PendingPod], types: list[Offer], bins: int, time_limit: float = 60.0
) -> tuple[float, bool]:
    """min sum_b sum_t c_t y_bt  s.t. each pod in one bin, bin load <= capacity of its type.
    Returns (cost, proven optimal); when the time limit ends the search, the proven lower
    bound instead."""
    r = vectors(pods)
    n, k = r.shape
    t = len(types)
    caps = np.array([capacity(o) for o in types])
    prices = np.array([o.price for o in types])
    nx, ny = n * bins, bins * t
    cost = np.concatenate([np.zeros(nx), np.tile(prices, bins)])

    def xi(p: int, b: int) -> int:
        return int(p * bins + b)

    def yi(b: int, j: int) -> int:
        return int(nx + b * t + j)

    rows: list[np.ndarray] = []
    lower: list[float] = []
    upper: list[float] = []
    for p in range(n):  # each pod exactly once
        row = np.zeros(nx + ny)
        for b in range(bins):
            row[xi(p, b)] = 1
        rows.append(row)
        lower.append(1)
        upper.append(1)
    for b in range(bins):
        row = np.zeros(nx + ny)
        for j in range(t):
            row[yi(b, j)] = 1
        rows.append(row)  # at most one type per bin
        lower.append(0)
        upper.append(1)
        for d in range(k):  # load within the chosen type's capacity
            row = np.zeros(nx + ny)
            for p in range(n):
                row[xi(p, b)] = r[p, d]
            for j in range(t):
                row[yi(b, j)] = -caps[j, d]
            rows.append(row)
            lower.append(-np.inf)
            upper.append(0)
        if b + 1 < bins:  # symmetry: open bins first
            row = np.zeros(nx + ny)
            for j in range(t):
                row[yi(b, j)] = 1
                row[yi(b + 1, j)] = -1
            rows.append(row)
            lower.append(0)
            upper.append(np.inf)
    result = milp(
        cost,
        constraints=LinearConstraint(np.array(rows), lower, upper),
        integrality=np.ones(nx + ny),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit},
    )
    if result.status == 0:
        return float(result.fun), True
    return float(getattr(result, "mip_dual_bound", 0.0) or 0.0), False


def fluid_lower_bound(pods: list[PendingPod], types: list[Offer]) -> float:
    demand = vectors(pods).sum(axis=0)
    caps = np.array([capacity(o) for o in types])
    prices = np.array([o.price for o in types])
    result = linprog(prices, A_ub=-caps.T, b_ub=-demand, bounds=(0, None), method="highs")
    return float(result.fun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=20, help="pods per small mix")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per exact solve")
    parser.add_argument("--large", default="1000,10000")
    args = parser.parse_args()
    config = build_config()
    offers = build_offers(load_catalog(None, "aws", "us-west-2"), config)
    candidates = shapes(offers, config)
    types = undominated(candidates)
    unproven: list[int] = []

    ratios, luna_ratios = [], []
    luna = build_config({"binPackingNodeStrategy": "cheapest-node"})
    for seed in range(args.seeds):
        pods = [describe_pod(p, config)[0] for p in small_pods(args.small, seed)]
        plan = simulate(pods, offers, config)
        luna_plan = simulate(pods, offers, luna)
        cheapest = min(o.price for o in types)
        bins = min(len(pods), int(plan.cost_per_hour / cheapest + 1e-9))
        optimum, proven = exact_optimum(pods, types, bins=bins, time_limit=args.time_limit)
        ratios.append(plan.cost_per_hour / optimum)
        luna_ratios.append(luna_plan.cost_per_hour / optimum)
        if not proven:
            unproven.append(seed)
        print(
            f"seed {seed}: {args.small} pods  gibbous ${plan.cost_per_hour:.4f} ({len(plan.new_nodes)} nodes)  "
            f"luna-rule ${luna_plan.cost_per_hour:.4f}  "
            + (f"optimum ${optimum:.4f}" if proven else f"optimum >= ${optimum:.4f} (time limit)")
            + f"  ratio {'<= ' if not proven else ''}{ratios[-1]:.3f}  (<= {bins} nodes, {len(types)} types)"
        )
    if ratios:
        print(
            f"small mixes ({len(ratios)} seeds, every one reported): gibbous/optimum median "
            f"{statistics.median(ratios):.3f} max {max(ratios):.3f}; cheapest-node rule/optimum "
            f"median {statistics.median(luna_ratios):.3f} max {max(luna_ratios):.3f}"
            + (f"; seeds {unproven} against a lower bound (time limit)" if unproven else "")
        )
    for size in (int(s) for s in args.large.split(",") if s):
        pods = [describe_pod(p, config)[0] for p in small_pods(size, 1000 + size)]
        plan = simulate(pods, offers, config)
        luna_plan = simulate(pods, offers, luna)
        bound = fluid_lower_bound(pods, candidates)
        print(
            f"large mix {size} pods: gibbous ${plan.cost_per_hour:.2f}  cheapest-node rule ${luna_plan.cost_per_hour:.2f}  "
            f"LP bound ${bound:.2f}  gibbous/LB {plan.cost_per_hour / bound:.3f}  rule/LB {luna_plan.cost_per_hour / bound:.3f}"
        )


if __name__ == "__main__":
    main()

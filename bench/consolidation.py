"""The cost of one consolidation review at cluster scale (`python -m bench.consolidation`).

Input: N Gibbous bin-pack nodes (t3a.2xlarge, on-demand, AWS us-west-2 catalog), each
with pods of a ReplicaSet: 90 % of the nodes hold five 1.5-CPU pods (94 % used), 10 %
hold two 250m pods (under Luna's 20 %: consolidation candidates by default). Measured in
the same process on the same input:

* baseline: the scale-down review (`review_scale_down`), which runs every step;
* a consolidation review (`consolidation_candidates` + `find_replacement`), which runs at
  most every 10 s and only when something changed (candidates `under-used`, the default,
  and `all`); pod readings are cached across reviews as the loop caches them, so the
  first review (every pod read) and a later one are both given.

Ratios are review time over the scale-down review's (median of --repeat runs).

Run: .venv/bin/python -m bench.consolidation [--nodes 1000,5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from gibbous.catalogs import load_catalog
from gibbous.core import keys
from gibbous.core.choice.selection import build_offers, offer_labels
from gibbous.core.lifecycle.consolidation import consolidation_candidates, find_replacement
from gibbous.core.lifecycle.disruption import review_scale_down
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.planning.placement import viewer
from gibbous.core.planning.podfacts import ClusterPods, PodFacts
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config

NOW = 1_800_000_000.0


def cluster(count: int, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    offers = build_offers(load_catalog(None, "aws", "us-west-2"), cfg)
    offer = next(o for o in offers if o.name == "t3a.2xlarge" and str(o.category) == "on-demand")
    labels = {**offer_labels(offer, cfg), keys.PLACEMENT: keys.PLACEMENT_BIN_PACK}
    nodes, pods = [], []
    for i in range(count):
        name = f"node-{i:05d}"
        nodes.append(
            {
                "metadata": {
                    "name": name,
                    "labels": {**labels, keys.HOSTNAME: name},
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "resourceVersion": "1",
                },
                "spec": {},
                "status": {
                    "allocatable": {
                        "cpu": f"{offer.allocatable.cpu_millis}m",
                        "memory": str(offer.allocatable.memory_bytes),
                        "pods": "110",
                    },
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        light = i % 10 == 0
        for j in range(2 if light else 5):
            pods.append(pod(f"p-{i:05d}-{j}", name, "250m" if light else "1500m"))
    return nodes, pods


def pod(name: str, node: str, cpu: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "labels": {"elotl-luna": "true"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True}
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "512Mi"}}}
            ],
        },
        "status": {"phase": "Running"},
    }


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def measure(count: int, candidates: str) -> dict[str, float]:
    cfg = build_config({"consolidation": {"candidates": candidates}})
    nodes, pods = cluster(count, cfg)
    offers = build_offers(load_catalog(None, "aws", "us-west-2"), cfg)
    by_key = {(o.name, str(o.category)): o for o in offers}
    bound = ClusterPods(cfg.designation)
    bound.sync(pods)
    view_of = viewer(1)
    views = [view_of(n) for n in nodes]
    existing = existing_nodes(nodes, pods, by_key, cfg, bound=bound)
    cache: dict[str, PendingPod | str] = {}

    def describe(facts: PodFacts) -> PendingPod | str:
        if facts.key not in cache:
            cache[facts.key] = describe_pod(facts.pod, cfg)[0]
        return cache[facts.key]

    def consolidation_review() -> None:
        found, _ = consolidation_candidates(
            views, bound, describe, by_key, cfg, now=NOW, busy=frozenset()
        )
        find_replacement(
            found, existing, offers, cfg, backoffs=Backoffs(), guardrails=None, now=NOW
        )

    def scale_down_review() -> None:
        review_scale_down(
            nodes,
            bound,
            existing,
            (),
            cfg,
            now=NOW,
            unneeded_since={},
            draining=frozenset(),
            view_of=view_of,
        )

    baseline = timed(scale_down_review)
    first = timed(consolidation_review)
    later = timed(consolidation_review)
    return {"scale_down_ms": baseline, "first_ms": first, "later_ms": later}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    print(
        "| nodes | pods | candidates | scale-down review ms | first review ms | later review ms | later / scale-down |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|")
    for count in (int(n) for n in arguments.nodes.split(",")):
        for candidates in ("under-used", "all"):
            runs = [measure(count, candidates) for _ in range(arguments.repeat)]
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            pods = count // 10 * 2 + (count - count // 10) * 5
            print(
                f"| {count:,} | {pods:,} | {candidates} | {row['scale_down_ms']:.1f} | "
                f"{row['first_ms']:.1f} | {row['later_ms']:.1f} | "
                f"{row['later_ms'] / row['scale_down_ms']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Required pod affinity, anti-affinity and hard topology spread in the packing simulation.

Expected figures come from kube-scheduler's filters (interpodaffinity/filtering.go:
satisfyPodAffinity, satisfyPodAntiAffinity, satisfyExistingPodsAntiAffinity;
podtopologyspread/filtering.go: Filter, minMatchNum) and Karpenter's domain universe for
new capacity (topologygroup.go: nextDomainTopologySpread), worked by hand in the comments.
The property at the end checks every placement with a checker written from those rules,
not from Gibbous's code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.errors import ManifestError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import ExistingNode, Plan
from gibbous.core.planning.scaleup import existing_nodes, plan_scale_up
from gibbous.core.podmodel.podtopology import placed_pod_topology, pod_topology
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config
from tests.factories import config, make_pod, offers

ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
GCP = config(cloudProvider="gcp", zones=list(ZONES))
GCP_OFFERS = offers("gcp", GCP)


def anti(pod: dict[str, Any], app: str, key: str = keys.HOSTNAME) -> dict[str, Any]:
    pod["spec"].setdefault("affinity", {}).setdefault("podAntiAffinity", {})[
        "requiredDuringSchedulingIgnoredDuringExecution"
    ] = [{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]
    return pod


def affine(pod: dict[str, Any], app: str, key: str = keys.HOSTNAME) -> dict[str, Any]:
    pod["spec"].setdefault("affinity", {}).setdefault("podAffinity", {})[
        "requiredDuringSchedulingIgnoredDuringExecution"
    ] = [{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]
    return pod


def spread(
    pod: dict[str, Any], app: str, key: str = keys.ZONE, skew: int = 1, **extra: Any
) -> dict[str, Any]:
    pod["spec"].setdefault("topologySpreadConstraints", []).append(
        {
            "maxSkew": skew,
            "topologyKey": key,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": app}},
            **extra,
        }
    )
    return pod


def replicas(app: str, count: int, **options: Any) -> list[dict[str, Any]]:
    return [make_pod(f"{app}-{i}", labels={"app": app}, **options) for i in range(count)]


def plan(pods: list[dict[str, Any]], cfg: Config = GCP, **kwargs: Any) -> Plan:
    return simulate([describe_pod(p, cfg)[0] for p in pods], offers(cfg.cloud, cfg), cfg, **kwargs)


def node_of(result: Plan) -> dict[str, int]:
    return {key: index for index, node in enumerate(result.new_nodes) for key in node.pods}


def existing(name: str, zone: str, pods: list[dict[str, Any]], cpu: str = "4") -> ExistingNode:
    return ExistingNode(
        name=name,
        free=Resources(cpu_millis=int(cpu) * 1000, memory_bytes=16 << 30, pods=100),
        placement=None,
        labels={keys.ZONE: zone, keys.HOSTNAME: name},
        pods=tuple(placed_pod_topology(p) for p in pods),
    )


# --- anti-affinity -------------------------------------------------------------------------


def test_self_anti_affinity_on_hostname_needs_one_node_per_replica() -> None:
    # satisfyPodAntiAffinity: a node whose hostname domain holds an app=web pod fails.
    pods = [anti(p, "web") for p in replicas("web", 3, cpu="500m", memory="512Mi")]
    result = plan(pods)
    assert len(result.new_nodes) == 3
    assert sorted(len(n.pods) for n in result.new_nodes) == [1, 1, 1]
    # Without the rule the three small pods share one bin-pack node.
    assert len(plan(replicas("web", 3, cpu="500m", memory="512Mi")).new_nodes) == 1


def test_anti_affinity_keeps_a_pod_off_an_existing_node_with_a_match() -> None:
    running = make_pod("web-old", labels={"app": "web"})
    node = existing("n1", ZONES[0], [running])
    result = plan([anti(make_pod("web-new", labels={"app": "web"}), "web")], existing=[node])
    assert result.on_existing == {}
    assert len(result.new_nodes) == 1
    # A pod the term does not select may use n1.
    other = plan([anti(make_pod("api", labels={"app": "api"}), "api")], existing=[node])
    assert other.on_existing == {"default/api": "n1"}


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    # satisfyExistingPodsAntiAffinity: Q on n1 (zone a) refuses app=web in zone a; R has no
    # rule of its own and still fails on every node of zone a.
    q = anti(make_pod("q", labels={"app": "q"}), "web", keys.ZONE)
    n1 = existing("n1", ZONES[0], [q])
    n2 = existing("n2", ZONES[0], [])
    n3 = existing("n3", ZONES[1], [])
    result = plan([make_pod("r", labels={"app": "web"})], existing=[n1, n2, n3])
    assert result.on_existing == {"default/r": "n3"}


def test_zone_anti_affinity_with_more_replicas_than_zones_reports_the_rest() -> None:
    pods = [anti(p, "db", keys.ZONE) for p in replicas("db", 4)]
    result = plan(pods)
    assert sorted(n.zone for n in result.new_nodes) == sorted(ZONES)
    assert list(result.unschedulable) == ["default/db-3"]
    assert "anti-affinity on topology.kubernetes.io/zone" in result.unschedulable["default/db-3"]


def test_a_nil_selector_selects_nothing() -> None:
    pods = replicas("web", 3)
    for pod in pods:
        pod["spec"]["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": keys.HOSTNAME}]
            }
        }
    assert len(plan(pods).new_nodes) == 1


def test_match_label_keys_are_merged_from_the_pods_own_labels() -> None:
    # applyMatchLabelKeysAndMismatchLabelKeys: {} selector + matchLabelKeys [app] becomes
    # app In [<own value>], so pods of another app are not counted.
    def pod(name: str, app: str) -> dict[str, Any]:
        made = make_pod(name, labels={"app": app})
        made["spec"]["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {}, "topologyKey": keys.HOSTNAME, "matchLabelKeys": ["app"]}
                ]
            }
        }
        return made

    result = plan([pod("a-0", "a"), pod("a-1", "a"), pod("b-0", "b")])
    where = node_of(result)
    assert where["default/a-0"] != where["default/a-1"]
    assert len(result.new_nodes) == 2


# --- affinity ------------------------------------------------------------------------------


def test_first_pod_of_a_self_affine_group_may_go_anywhere() -> None:
    # satisfyPodAffinity: no pod matches anywhere and the pod matches its own term: passes.
    pods = [affine(p, "cache", keys.ZONE) for p in replicas("cache", 3)]
    result = plan(pods)
    assert not result.unschedulable
    assert len(result.new_nodes) == 1


def test_affinity_to_pods_that_do_not_exist_is_unschedulable() -> None:
    result = plan([affine(make_pod("web", labels={"app": "web"}), "cache", keys.ZONE)])
    assert "pod affinity" in result.unschedulable["default/web"]
    assert not result.new_nodes


def test_affinity_on_hostname_follows_the_matching_pod() -> None:
    db = make_pod("db", labels={"app": "db"})
    n1, n2 = existing("n1", ZONES[0], []), existing("n2", ZONES[0], [db])
    result = plan([affine(make_pod("web", labels={"app": "web"}), "db")], existing=[n1, n2])
    assert result.on_existing == {"default/web": "n2"}
    full = ExistingNode(
        "n2",
        Resources(cpu_millis=10, memory_bytes=1 << 20, pods=1),
        None,
        {keys.ZONE: ZONES[0], keys.HOSTNAME: "n2"},
        pods=(placed_pod_topology(db),),
    )
    stuck = plan([affine(make_pod("web", labels={"app": "web"}), "db")], existing=[n1, full])
    assert "pod affinity on kubernetes.io/hostname" in stuck.unschedulable["default/web"]


# --- topology spread -----------------------------------------------------------------------


def test_zone_spread_puts_one_node_in_each_zone() -> None:
    # GKE's whereami: 3 replicas, maxSkew 1 over zones. Domains {a, b, c} all 0: each pod
    # goes to a domain where count + 1 - 0 <= 1.
    result = plan([spread(p, "whereami") for p in replicas("whereami", 3)])
    assert sorted(n.zone for n in result.new_nodes) == sorted(ZONES)


def test_four_pods_over_three_zones_split_two_one_one() -> None:
    # scheduling-fidelity-facts 6.8: Karpenter places 4 pods as 2/1/1.
    result = plan([spread(p, "w") for p in replicas("w", 4)])
    per_zone = Counter(result.new_nodes[index].zone for index in node_of(result).values())
    assert sorted(per_zone.values()) == [1, 1, 2]


def test_min_domains_needs_a_node_in_a_third_zone() -> None:
    # 5.5: zones a and b with one matching pod each, minDomains 3: on either node the skew
    # would be 1 + 1 - 0 = 2 > 1, so capacity must be added in zone c.
    n1 = existing("n1", ZONES[0], [make_pod("w-a", labels={"app": "w"})])
    n2 = existing("n2", ZONES[1], [make_pod("w-b", labels={"app": "w"})])
    pod = spread(make_pod("w-new", labels={"app": "w"}), "w", minDomains=3)
    result = plan([pod], existing=[n1, n2])
    assert result.on_existing == {}
    assert [n.zone for n in result.new_nodes] == [ZONES[2]]


def test_spread_honours_existing_counts() -> None:
    # Zone a already has 2 matching pods, b and c none: a new pod in a would be
    # 2 + 1 - 0 = 3 > 1, so it must go to b or c even though n1 has room.
    n1 = existing("n1", ZONES[0], [make_pod(f"w{i}", labels={"app": "w"}) for i in range(2)])
    result = plan([spread(make_pod("w-new", labels={"app": "w"}), "w")], existing=[n1])
    assert result.on_existing == {}
    assert result.new_nodes[0].zone in ZONES[1:]


def test_hostname_spread_allows_max_skew_per_node() -> None:
    pods = [spread(p, "h", keys.HOSTNAME, skew=2) for p in replicas("h", 5)]
    result = plan(pods)
    assert sorted(len(n.pods) for n in result.new_nodes) == [1, 2, 2]


def test_schedule_anyway_is_a_preference_and_buys_nothing() -> None:
    pods = [
        spread(p, "w", keys.HOSTNAME, whenUnsatisfiable="ScheduleAnyway") for p in replicas("w", 3)
    ]
    assert len(plan(pods).new_nodes) == 1


def test_zone_rules_need_known_zones() -> None:
    cfg = config(cloudProvider="gcp")
    zoneless = [replace(o, instance=replace(o.instance, zones=())) for o in offers("gcp", cfg)]
    pod = describe_pod(spread(make_pod("w", labels={"app": "w"}), "w"), cfg)[0]
    result = simulate([pod], zoneless, cfg)
    assert "set the zones option" in result.unschedulable["default/w"]


def test_the_launch_is_pinned_to_the_chosen_zone() -> None:
    pods = [describe_pod(spread(p, "w"), GCP)[0] for p in replicas("w", 3)]
    decision = plan_scale_up(pods, GCP_OFFERS, GCP, now=0.0)
    assert sorted(launch.zones for launch in decision.launches) == [(z,) for z in ZONES]
    assert sorted(launch.labels[keys.ZONE] for launch in decision.launches) == list(ZONES)


def test_invalid_terms_are_named() -> None:
    pod = make_pod("p")
    pod["spec"]["topologySpreadConstraints"] = [
        {"maxSkew": 0, "topologyKey": keys.ZONE, "whenUnsatisfiable": "DoNotSchedule"}
    ]
    with pytest.raises(ManifestError, match=r"topologySpreadConstraints\[0\]\.maxSkew"):
        pod_topology(pod)
    pod["spec"] = {
        "affinity": {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {}}]
            }
        }
    }
    with pytest.raises(ManifestError, match="topologyKey: must be set"):
        pod_topology(pod)


# --- the property: an independent checker ----------------------------------------------------


def _selects(selector_app: str | None, labels: dict[str, str]) -> bool:
    return selector_app is not None and labels.get("app") == selector_app


def check_placement(
    pods: list[dict[str, Any]],
    result: Plan,
    running: Sequence[tuple[str, str, list[dict[str, Any]]]] = (),
) -> list[str]:
    """Problems with the final placement by kube-scheduler's rules, written from
    scheduling-fidelity-facts sections 4 and 5 (not from Gibbous's code). Pods here live in
    one namespace and select by `app`; nodes carry hostname and zone; `running` lists the
    existing nodes as (name, zone, pods bound there)."""
    where: dict[str, object] = dict(node_of(result))
    domain: dict[str, dict[str, str]] = {}
    for key, index in node_of(result).items():
        node = result.new_nodes[index]
        domain[key] = {keys.HOSTNAME: f"n{index}", keys.ZONE: node.zone or "?"}
    zone_of = {name: zone for name, zone, _ in running}
    for key, name in result.on_existing.items():
        where[key] = name
        domain[key] = {keys.HOSTNAME: name, keys.ZONE: zone_of[name]}
    by_key = {f"default/{p['metadata']['name']}": p for p in pods}
    for name, zone, bound in running:
        for pod in bound:
            key = f"default/{pod['metadata']['name']}"
            by_key[key] = pod
            where[key] = name
            domain[key] = {keys.HOSTNAME: name, keys.ZONE: zone}
    placed = [k for k in where if k in result.on_existing or k in node_of(result)]
    problems = []
    for key in placed:
        pod = by_key[key]
        labels = pod["metadata"]["labels"]
        affinity = pod["spec"].get("affinity", {})
        others = [k for k in where if k != key]
        for term in affinity.get("podAntiAffinity", {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution", []
        ):
            app = term.get("labelSelector", {}).get("matchLabels", {}).get("app")
            tk = term["topologyKey"]
            for other in others:
                if _selects(app, by_key[other]["metadata"]["labels"]) and (
                    domain[other][tk] == domain[key][tk]
                ):
                    problems.append(f"{key} anti-affine to {other} in {tk}")
        for other in others:  # symmetry
            for term in (
                by_key[other]["spec"]
                .get("affinity", {})
                .get("podAntiAffinity", {})
                .get("requiredDuringSchedulingIgnoredDuringExecution", [])
            ):
                app = term.get("labelSelector", {}).get("matchLabels", {}).get("app")
                tk = term["topologyKey"]
                if _selects(app, labels) and domain[other][tk] == domain[key][tk]:
                    problems.append(f"{other}'s anti-affinity excludes {key} in {tk}")
        for constraint in pod["spec"].get("topologySpreadConstraints", []):
            if constraint["whenUnsatisfiable"] != "DoNotSchedule":
                continue
            app = constraint["labelSelector"]["matchLabels"]["app"]
            tk = constraint["topologyKey"]
            counts: Counter[str] = Counter()
            for name, zone, _ in running:
                counts[name if tk == keys.HOSTNAME else zone] += 0
            for node_index, node in enumerate(result.new_nodes):
                # A node whose zone the provider picks lands in one of ZONES (added below).
                if tk == keys.HOSTNAME or node.zone:
                    counts[f"n{node_index}" if tk == keys.HOSTNAME else node.zone] += 0
            for k in where:
                if _selects(app, by_key[k]["metadata"]["labels"]):
                    if domain[k][tk] == "?":
                        problems.append(f"{k} counts for {key}'s spread but has no zone yet")
                    counts[domain[k][tk]] += 1
            if tk == keys.ZONE:
                for zone in ZONES:
                    counts[zone] += 0
            # Final state reachable by adding pods to the least-filled domain first:
            # max - min <= maxSkew (with min 0 when fewer domains than minDomains).
            lowest = 0 if len(counts) < constraint.get("minDomains", 1) else min(counts.values())
            if counts[domain[key][tk]] - lowest > constraint["maxSkew"]:
                problems.append(f"{key} breaks spread on {tk}: {dict(counts)}")
    return problems


apps = st.sampled_from(["a", "b", "c"])
rule = st.one_of(
    st.none(),
    st.tuples(st.just("anti"), apps, st.sampled_from([keys.HOSTNAME, keys.ZONE])),
    st.tuples(
        st.just("spread"), apps, st.sampled_from([keys.HOSTNAME, keys.ZONE]), st.integers(1, 2)
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(apps, rule, st.sampled_from(["250m", "1", "3"])), max_size=14),
    st.lists(
        st.tuples(st.sampled_from(ZONES), st.lists(st.tuples(apps, rule), max_size=2)),
        max_size=3,
    ),
)
def test_every_placement_passes_an_independent_checker(
    specs: list[tuple[str, Any, str]], nodes: list[tuple[str, list[tuple[str, Any]]]]
) -> None:
    def made(name: str, app: str, chosen: Any, cpu: str) -> dict[str, Any]:
        pod = make_pod(name, labels={"app": app}, cpu=cpu, memory="256Mi")
        if chosen is not None and chosen[0] == "anti":
            anti(pod, chosen[1], chosen[2])
        elif chosen is not None:
            spread(pod, chosen[1], chosen[2], chosen[3])
        return pod

    pods = [made(f"p{i}", app, chosen, cpu) for i, (app, chosen, cpu) in enumerate(specs)]
    running = [
        (
            f"e{n}",
            zone,
            [made(f"e{n}-{i}", app, chosen, "100m") for i, (app, chosen) in enumerate(bound)],
        )
        for n, (zone, bound) in enumerate(nodes)
    ]
    result = plan(pods, existing=[existing(name, zone, bound) for name, zone, bound in running])
    placed = set(node_of(result)) | set(result.on_existing)
    assert placed | set(result.unschedulable) == {f"default/p{i}" for i in range(len(pods))}
    assert check_placement(pods, result, running) == []


# --- the autoscaler's path: Node and Pod objects through existing_nodes ----------------------


def node_object(name: str, zone: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {keys.HOSTNAME: name, keys.ZONE: zone}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_bound_pods_rules_reach_the_plan_through_existing_nodes() -> None:
    # n1 runs a pod whose required anti-affinity refuses app=web on its hostname (symmetry);
    # n2 runs an app=web pod that is terminating, which kube-scheduler's InterPodAffinity
    # still sees until it is gone; n3 is free.
    guard = anti(make_pod("guard", labels={"app": "guard"}), "web")
    guard["spec"]["nodeName"] = "n1"
    leaving = make_pod("leaving", labels={"app": "web"})
    leaving["spec"]["nodeName"] = "n2"
    leaving["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    nodes = existing_nodes(
        [node_object("n1", ZONES[0]), node_object("n2", ZONES[1]), node_object("n3", ZONES[2])],
        [guard, leaving],
        {},
        GCP,
    )
    web = anti(make_pod("web", labels={"app": "web"}), "web")
    result = simulate([describe_pod(web, GCP)[0]], GCP_OFFERS, GCP, existing=nodes)
    assert result.on_existing == {"default/web": "n3"}


# --- zones of the built-in Azure and OCI catalogs --------------------------------------------
# AKS labels zonal nodes `<region>-<zone>` (cloud-provider-azure "Use Availability Zones"), and
# East US has zones 1, 2, 3; OKE labels nodes with the shortened availability domain name,
# US-ASHBURN-AD-1..3 in Ashburn (OKE "Supported Labels for Different Usecases").
BUILT_IN_ZONES = {
    "azure": {"eastus-1", "eastus-2", "eastus-3"},
    "oci": {"US-ASHBURN-AD-1", "US-ASHBURN-AD-2", "US-ASHBURN-AD-3"},
}


@pytest.mark.parametrize("cloud", sorted(BUILT_IN_ZONES))
def test_a_zone_spread_on_azure_and_oci_uses_the_regions_zones(cloud: str) -> None:
    cfg = config(cloudProvider=cloud)  # no `zones` option: the catalog's zones
    result = plan([spread(p, "web") for p in replicas("web", 3, cpu="3", memory="4Gi")], cfg)
    assert not result.unschedulable
    assert {n.zone for n in result.new_nodes} == BUILT_IN_ZONES[cloud]


@pytest.mark.parametrize("cloud", sorted(BUILT_IN_ZONES))
def test_another_clouds_zone_is_unsatisfiable_and_named(cloud: str) -> None:
    cfg = config(cloudProvider=cloud)
    pod = make_pod("aws-zone", cpu="3", memory="4Gi", node_selector={keys.ZONE: "us-west-2a"})
    result = plan([pod], cfg)
    assert not result.new_nodes
    (reason,) = result.unschedulable.values()
    assert "us-west-2a" in reason
    assert f"not a zone of {cloud} " in reason
    assert all(zone in reason for zone in BUILT_IN_ZONES[cloud])
    zonal = make_pod(
        "zonal", cpu="3", memory="4Gi", node_selector={keys.ZONE: min(BUILT_IN_ZONES[cloud])}
    )
    assert plan([zonal], cfg).new_nodes

"""`gibbous simulate`: the posts' experiments reproduce their published shapes through
Gibbous's real loop, the peers behave as their documentation says, the bill is the
catalog's prices times the time nodes ran, and scenario files are read strictly."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pytest
import yaml

from gibbous.catalogs import load_catalog
from gibbous.cli import main
from gibbous.core.podmodel.pods import key_of
from gibbous.core.settings.loader import build_config
from gibbous.simulation.cloud import SimCloud
from gibbous.simulation.engine import FirstNode, run
from gibbous.simulation.scenario import (
    ScenarioError,
    built_in,
    load_scenario,
    parse_scenario,
    scenario_from_cluster,
)
from gibbous.simulation.world import SimCluster


def first_running(nodes: list[FirstNode]) -> tuple[str, float]:
    """(type (category), seconds from the start) of the first node that ran."""
    first = nodes[0]
    return f"{first.instance_type} ({first.category})", first.ran_at_s


@pytest.mark.parametrize("policy", ["gibbous", "luna-rule"])
def test_p10_two_t4_spot_timeouts_then_the_p4_spot_node_at_about_20_minutes(policy: str) -> None:
    result = run(load_scenario("p10-gke-spot"), policy)
    described, at = first_running(result.first_nodes)
    assert described == "n1-standard-32+p4x2 (spot)"
    # Two 10-minute scaleUpTimeouts, then the launch, then the 90 s boot (P10: "about 20
    # minutes"); the loop's 2 s steps add at most a few seconds each.
    assert 2 * 600 + 90 <= at <= 2 * 600 + 90 + 30
    assert result.never_ran == 0 and result.spot_share == 1.0
    # The bill: P10's $1.36/hr P4 spot node for the time it ran, nothing for the hung ones.
    hours = 3600 * 1 - at
    assert result.total_cost == pytest.approx(1.36 * hours / 3600, rel=0.01)


def test_p10_under_karpenter_like_keeps_retrying_the_hung_type_its_cache_never_learns() -> None:
    # Karpenter drops a launch that never registers after 15 minutes, and a registration
    # timeout does not put the offering in its unavailable-offerings cache (only
    # insufficient-capacity errors do): it asks for the hung type again, and within the
    # hour the P4 node is never reached.
    result = run(load_scenario("p10-gke-spot"), "karpenter-like")
    assert result.never_ran == 1 and result.total_cost == 0.0


def test_p15_experiment_1_the_hot_node_sheds_one_worker_and_the_cluster_settles() -> None:
    gibbous = run(load_scenario("p15-hot-node-evict"), "gibbous")
    assert gibbous.evictions == 1 and gibbous.peak_nodes == 2
    # Red for at most one HNM loop period (30 s) plus a step.
    assert gibbous.above_red_node_s is not None and gibbous.above_red_node_s <= 35
    for peer in ("karpenter-like", "ca-like", "static"):
        other = run(load_scenario("p15-hot-node-evict"), peer)
        assert other.evictions == 0
        assert other.above_red_node_s is not None and other.above_red_node_s > 2500


def test_p15_experiment_2_a_warm_node_is_tainted_not_evicted_and_the_next_pod_goes_elsewhere() -> (
    None
):
    result = run(load_scenario("p15-hot-node-warm"), "gibbous")
    assert result.peak_nodes == 2  # the next pod got a node of its own, not the warm one
    by_minute = {int(s.t_s // 60): s.nodes for s in result.samples}
    assert by_minute[85] == 2  # warm: tainted, nothing evicted, both nodes kept
    # Once the app's use falls (90 m: 200m of 8 CPUs), scale-down reads usage (mitigation
    # is on): one of the two nodes goes after scaleDown.unneededTime (5 m), its one pod
    # moved, the only eviction of the run.
    assert result.evictions == 1 and by_minute[100] == 1 and result.samples[-1].nodes == 1


def test_the_static_bill_is_the_catalog_price_times_the_hours_the_node_ran() -> None:
    scenario = load_scenario("p15-hot-node-warm")
    result = run(scenario, "static")
    (node,) = result.first_nodes
    catalog = load_catalog(None, "azure", "eastus")
    price = next(t.on_demand_price for t in catalog if t.name == node.instance_type)
    expected = price * (scenario.duration_s - node.ran_at_s) / 3600
    assert result.total_cost == pytest.approx(expected, rel=0.01)


def test_every_built_in_scenario_runs_under_every_policy_and_its_summary_adds_up() -> None:
    """Checked by hand against the samples: the bill is the sampled $/hr integrated over
    time, node-hours the sampled node count integrated, the peak at least every sample;
    samples from 0 s, about a minute apart, within the duration; Gibbous and the static
    peak sizing run every pod and leave none pending; static never removes a node."""
    for name in sorted(built_in()):
        if name in ("synthetic-gpu-day", "p08-kai-queue-day"):
            continue  # long days: bench/simulate.py, and the P08 test below
        scenario = load_scenario(name)
        for policy in ("gibbous", "luna-rule", "karpenter-like", "ca-like", "static"):
            result = run(scenario, policy)
            samples = result.samples
            where = (name, policy)
            assert samples[0].t_s == 0 and samples[-1].t_s <= scenario.duration_s, where
            gaps = [b.t_s - a.t_s for a, b in itertools.pairwise(samples)]
            assert all(0 < gap <= 120 for gap in gaps), where
            ends = [s.t_s for s in samples[1:]] + [scenario.duration_s]
            spans = [(end - s.t_s) / 3600 for s, end in zip(samples, ends, strict=True)]
            billed = sum(s.cost_per_hour * span for s, span in zip(samples, spans, strict=True))
            node_hours = sum(s.nodes * span for s, span in zip(samples, spans, strict=True))
            assert result.total_cost == pytest.approx(billed, rel=0.05, abs=0.01), where
            assert result.node_hours == pytest.approx(node_hours, rel=0.05, abs=0.05), where
            assert result.peak_nodes >= max(s.nodes for s in samples), where
            assert 0.0 <= result.spot_share <= 1.0, where
            if policy in ("gibbous", "luna-rule", "static"):
                assert result.never_ran == 0 and samples[-1].pending == 0, where
            if policy == "static":
                nodes = [s.nodes for s in samples]
                assert nodes == sorted(nodes), where


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x", "workloadz": []}, "did you mean 'workloads'"),
        ({"workloads": [{"name": "w", "pod": {"spec": {}}, "cunt": 2}]}, "did you mean 'count'"),
        ({"duration": "soon"}, "duration"),
        ({"events": [{"at": "1m", "hang": {"category": "spot"}}]}, "type is needed"),
        ({"events": [{"at": "1m"}]}, "exactly one of"),
        ({"cloud": "ibm"}, "expected aws, gcp, azure or oci"),
        ({"workloads": [{"name": "w", "pod": {"spec": {}}, "usage": [{"cpu": "lots"}]}]}, "cpu"),
        ({"workloads": [{"name": "w", "pod": {"spec": {}}, "usageClock": "wall"}]}, "pod or"),
    ],
)
def test_scenario_files_are_read_strictly(document: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(document, "bad.yaml")


def test_the_command_writes_json_and_a_self_contained_html_report(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "cloud": "aws",
                "duration": "30m",
                "workloads": [
                    {
                        "name": "web",
                        "count": 3,
                        "runFor": "10m",
                        "pod": {
                            "metadata": {"labels": {"elotl-luna": "true"}},
                            "spec": {
                                "containers": [
                                    {"name": "c", "resources": {"requests": {"cpu": "500m"}}}
                                ]
                            },
                        },
                    }
                ],
            }
        )
    )
    out = io.StringIO()
    report = tmp_path / "report.html"
    argv = ["simulate", str(scenario), "--output", "json", "--report", str(report), "--quiet"]
    assert main(argv, stdout=out) == 0
    document = json.loads(out.getvalue())
    policies = [r["policy"] for r in document["results"]]
    assert policies == ["gibbous", "luna-rule", "karpenter-like", "ca-like", "static"]
    assert all(r["never_ran"] == 0 and r["total_cost"] > 0 for r in document["results"])
    page = report.read_text()
    assert page.count("<svg") == 3 and page.count("<tr") == 6
    assert "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # nothing fetched


def test_an_unknown_policy_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "p10-gke-spot", "--policy", "gibbous,yunikorn", "--quiet"]) == 2
    assert "yunikorn" in capsys.readouterr().err


def test_a_live_cluster_becomes_a_starting_state() -> None:
    nodes = [
        {
            "metadata": {
                "name": "n1",
                "labels": {"node.kubernetes.io/instance-type": "m5.xlarge",
                           "karpenter.sh/capacity-type": "spot",
                           "topology.kubernetes.io/zone": "us-west-2a"},
            },
            "spec": {"providerID": "aws:///us-west-2a/i-1",
                     "taints": [{"key": "team", "value": "a", "effect": "NoSchedule"}]},
        },
        {"metadata": {"name": "n2", "labels": {"node.kubernetes.io/instance-type": "custom-9"}},
         "spec": {"providerID": "aws:///us-west-2a/i-2"}},
    ]  # fmt: skip

    def pod(name: str, *, owner: str | None = None, phase: str = "Running") -> dict[str, object]:
        meta: dict[str, object] = {
            "name": name,
            "namespace": "ns",
            "labels": {"elotl-luna": "true"},
        }
        if owner:
            meta["ownerReferences"] = [{"kind": owner, "name": "x", "uid": "u", "apiVersion": "v1"}]
        return {
            "metadata": meta,
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": phase},
        }  # fmt: skip

    pods = [pod("web", owner="ReplicaSet"), pod("bare"), pod("agent", owner="DaemonSet"),
            pod("done", owner="Job", phase="Succeeded")]  # fmt: skip
    names = {t.name for t in load_catalog(None, "aws", "us-west-2")}
    scenario = scenario_from_cluster(
        pods, nodes, duration_s=3600, cloud=None, catalog_names=names, source="test"
    )
    assert scenario.cloud == "aws"
    ((node),) = scenario.nodes
    assert (node.name, node.instance_type, node.category) == ("n1", "m5.xlarge", "spot")
    assert node.taints == ({"key": "team", "value": "a", "effect": "NoSchedule"},)
    assert "n2 (custom-9)" in scenario.description
    assert [(w.name, w.replace) for w in scenario.workloads] == [
        ("ns-web", True),
        ("ns-bare", False),
    ]
    assert all("nodeName" not in w.pod["spec"] for w in scenario.workloads)
    result = run(scenario, "gibbous")
    assert result.never_ran == 0 and result.peak_nodes >= 1  # the pods run on the node they had


def test_p09_vpa_turns_bin_pack_pods_bin_select_and_back() -> None:
    result = run(load_scenario("p09-vpa-reclassify"), "gibbous")
    # 500m pods: one bin-pack node (binPackingNodeCpu 4); at 45m VPA asks 2.5 CPUs (past
    # binSelectPodCpuThreshold 2): bin-select capacity; at 2h, 300m: bin-pack again.
    times = [node.ran_at_s for node in result.first_nodes]
    assert times[0] < 45 * 60 < times[1] < 120 * 60 < times[2]
    assert result.never_ran == 0 and result.evictions == 0  # VPA's evictions are not ours


def test_p08_the_gpu_cap_holds_and_jobs_queue_instead() -> None:
    for policy in ("gibbous", "karpenter-like"):  # ca-like: the same launch cap
        result = run(load_scenario("p08-kai-queue-day"), policy)
        assert result.peak_gpus == 8, policy  # clusterGPULimit, reached and never passed
        assert result.never_ran == 0 and result.pending_max_s > 600, policy


def test_a_resize_must_name_a_workload() -> None:
    document = {
        "workloads": [{"name": "api", "pod": {"spec": {}}}],
        "events": [{"at": "1m", "resize": {"workload": "apj", "cpu": "1"}}],
    }
    with pytest.raises(ScenarioError, match="'apj' is none of api"):
        parse_scenario(document, "bad.yaml")


def test_config_and_cloud_apply_over_the_scenario(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("scaleUpTimeout: 5m\nimagePullSecretName: dockerhub\n")  # a Helm values file
    out = io.StringIO()
    argv = ["simulate", "p10-gke-spot", "--policy", "gibbous", "--config", str(values),
            "--output", "json", "--quiet"]  # fmt: skip
    assert main(argv, stdout=out) == 0
    (result,) = json.loads(out.getvalue())["results"]
    # Two 5-minute timeouts instead of 10, then the P4 spot node's 90 s boot.
    assert 2 * 300 + 90 <= result["pending_max_s"] <= 2 * 300 + 90 + 30
    out = io.StringIO()
    argv = ["simulate", "p14-binpack-mix", "--policy", "gibbous", "--cloud", "aws",
            "--output", "json", "--quiet"]  # fmt: skip
    assert main(argv, stdout=out) == 0
    assert json.loads(out.getvalue())["results"][0]["never_ran"] == 0


@pytest.mark.parametrize(("clock", "replacement_cores"), [("pod", 1.0), ("workload", 3.0)])
def test_the_usage_clock_says_whether_a_replacement_starts_its_profile_afresh(
    clock: str, replacement_cores: float
) -> None:
    # Profile: 1 core from 0 s, 3 cores from 10 minutes. The pod is evicted at 15 minutes
    # and its replacement bound a minute later: on the pod clock it is 0 s old (1 core);
    # on the workload clock it goes on from the first pod's start, 16 minutes (3 cores).
    scenario = parse_scenario(
        {
            "cloud": "azure",
            "workloads": [
                {
                    "name": "api",
                    "usageClock": clock,
                    "pod": {"metadata": {"labels": {"elotl-luna": "true"}}, "spec": {}},
                    "usage": [{"after": "0s", "cpu": "1"}, {"after": "10m", "cpu": "3"}],
                }
            ],
        }
    )
    (workload,) = scenario.workloads
    now = [0.0]
    world = SimCluster(
        SimCloud(load_catalog(None, "azure", "eastus"), lambda: now[0], boot_s=90),
        build_config({}),
        lambda: now[0],
        {},
    )
    first = world.create_pod(
        workload.pod,
        workload="api",
        run_for_s=None,
        replace_pods=True,
        usage=workload.usage,
        arrival=0,
        usage_follows_workload=workload.usage_follows_workload,
    )
    first.bound_at = 0.0
    now[0] = 900.0
    assert world.usage_of(first)[0] == 3.0
    world.remove_pod(key_of(first.obj), why="evicted")
    (replacement,) = world.pods_by_key.values()
    now[0] = 960.0
    replacement.bound_at = 960.0
    assert world.usage_of(replacement)[0] == replacement_cores

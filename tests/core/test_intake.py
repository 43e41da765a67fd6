"""Which pending pods trigger scale-up; the KAI and Volcano strings come from their sources
(docs/anchors.md section 3), the regexp vectors from the KAI post."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from gibbous.core import keys
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.intake import Intake, decide_intake
from gibbous.core.settings.options.core import RESOURCE_SHORTAGE_REGEXP
from gibbous.simulation.world import unschedulable_status
from tests.factories import config, make_pod

NOW = 1_800_000_000.0


def pending(message: str, **extra: Any) -> dict[str, Any]:
    pod = make_pod("p", cpu="1", gpus=1)
    pod["status"] = unschedulable_status(message)
    pod["status"].update(extra)
    return pod


RESOURCE_SHORTAGE = [
    "0/5 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 4 Insufficient nvidia.com/gpu. preemption: 0/5 nodes are available: 1 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod..",
    "Scheduling conditions were not met for pod default/gpu-pod-1a:MaxNodePoolResources: ... No node in the default node-pool has GPU resources.",
    "no nodes with enough resources were found: 4 node(s) didn''t have enough resources: GPUs.",
    "3/3 tasks in gang unschedulable: 0/3 nodes are available: 3 Insufficient cpu.",
    "no nodes available to schedule pods",  # kube-scheduler, when the cluster has no node
]
QUEUE_OR_QUOTA = [
    "OverLimit: default1 quota has reached the allowable limit of GPUs. Limit is 1 GPUs, currently 1 GPUs allocated and workload requested 1 GPU",
    "research quota has reached the allowable limit of GPUs. Limit is 8 GPUs, currently 8 GPUs allocated and workload requested 2 GPUs",
    "Non-preemptible workload is over quota. Workload requested 4 GPUs, but research quota is 4 GPUs, while 4 GPUs are already allocated for non-preemptible pods. Use a preemptible workload to go over quota.",
    "queue resource quota insufficient: insufficient cpu, insufficient memory",
    "Workload doesn't meet the minimum required number of pods (4), evicting remaining pod: ml/worker-3",
]


SHORTAGE_ONLY = config(pendingPodReasonRegexp=RESOURCE_SHORTAGE_REGEXP)


@pytest.mark.parametrize(
    "message", [*RESOURCE_SHORTAGE, *QUEUE_OR_QUOTA, "Pod is unschedulable: insufficient cpu"]
)
def test_by_default_every_unschedulable_pod_counts_as_in_luna(message: str) -> None:
    # P08: "Without any configuration, Luna would treat all pending pods" as needing nodes.
    assert decide_intake(pending(message), config(), NOW).intake is Intake.PROVISION


@pytest.mark.parametrize("message", RESOURCE_SHORTAGE)
def test_shortage_regexp_provisions_for_resource_shortage(message: str) -> None:
    assert decide_intake(pending(message), SHORTAGE_ONLY, NOW).intake is Intake.PROVISION


@pytest.mark.parametrize("message", QUEUE_OR_QUOTA)
def test_shortage_regexp_ignores_queue_and_quota_refusals(message: str) -> None:
    decision = decide_intake(pending(message), SHORTAGE_ONLY, NOW)
    assert decision.intake is Intake.IGNORE and "pendingPodReasonRegexp" in decision.reason


def test_lunas_kai_regexp_from_the_post() -> None:
    kai = config(pendingPodReasonRegexp="(.*[Nn]o.*resources.*|^0/([0-9]+) nodes are available)")
    assert decide_intake(pending(RESOURCE_SHORTAGE[1]), kai, NOW).intake is Intake.PROVISION
    assert decide_intake(pending(RESOURCE_SHORTAGE[2]), kai, NOW).intake is Intake.PROVISION
    assert (
        decide_intake(pending("0/5 nodes are available: ..."), kai, NOW).intake is Intake.PROVISION
    )
    assert decide_intake(pending(QUEUE_OR_QUOTA[0]), kai, NOW).intake is Intake.IGNORE
    everything = config(pendingPodReasonRegexp="")
    assert decide_intake(pending(QUEUE_OR_QUOTA[0]), everything, NOW).intake is Intake.PROVISION


def test_a_pod_of_another_scheduler_is_provisioned_for_when_it_reports_unschedulable() -> None:
    # The webhook leaves KAI's pods with KAI; its Unschedulable condition still drives scale-up.
    pod = pending(RESOURCE_SHORTAGE[0])
    pod["spec"]["schedulerName"] = "kai-scheduler"
    cfg = config(schedulerName="gibbous-scheduler")
    assert decide_intake(pod, cfg, NOW).intake is Intake.PROVISION
    # With P08's resource-shortage pattern, KAI's own queue refusals still get no node.
    kai = config(
        schedulerName="gibbous-scheduler",
        pendingPodReasonRegexp="(.*[Nn]o.*resources.*|^0/([0-9]+) nodes are available)",
    )
    assert decide_intake(pending(QUEUE_OR_QUOTA[0]), kai, NOW).intake is Intake.IGNORE


def test_lunas_ignore_annotation_means_no_node() -> None:
    pod = pending(RESOURCE_SHORTAGE[0])
    pod["metadata"]["annotations"] = {"pod.elotl.co/ignore": "true"}
    decision = decide_intake(pod, config(), NOW)
    assert decision.intake is Intake.IGNORE and "pod.elotl.co/ignore" in decision.reason
    pod["metadata"]["annotations"] = {"pod.elotl.co/ignore": "false"}
    assert decide_intake(pod, config(), NOW).intake is Intake.PROVISION


def test_gates() -> None:
    cfg = config()
    ours = make_pod(cpu="4")
    ours["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    assert decide_intake(ours, cfg, NOW).intake is Intake.PROVISION
    estimate = make_pod()
    estimate["spec"]["schedulingGates"] = [{"name": "nodecostestimate"}]
    assert decide_intake(estimate, cfg, NOW).intake is Intake.ESTIMATE
    foreign = make_pod()
    foreign["spec"]["schedulingGates"] = [
        {"name": keys.PROVISIONING_GATE},
        {"name": "kueue.x-k8s.io/admission"},
    ]
    decision = decide_intake(foreign, cfg, NOW)
    assert decision.intake is Intake.IGNORE and "kueue.x-k8s.io/admission" in decision.reason


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda p: p["metadata"]["labels"].pop("elotl-luna"), "not managed"),
        (lambda p: p["spec"].__setitem__("nodeName", "n1"), "already bound"),
        (lambda p: p["status"].__setitem__("nominatedNodeName", "n2"), "preempting"),
        (
            lambda p: p["metadata"].__setitem__("deletionTimestamp", "2026-01-01T00:00:00Z"),
            "terminating",
        ),
        (
            lambda p: p["metadata"].__setitem__(
                "ownerReferences", [{"kind": "DaemonSet", "name": "ds"}]
            ),
            "DaemonSet",
        ),
        (lambda p: p["status"].__setitem__("phase", "Succeeded"), "finished"),
        (lambda p: p["status"].__setitem__("conditions", []), "not marked Unschedulable"),
    ],
)
def test_exclusions(change: Any, fragment: str) -> None:
    pod = pending(RESOURCE_SHORTAGE[0])
    change(pod)
    decision = decide_intake(pod, config(), NOW)
    assert decision.intake is Intake.IGNORE and fragment in decision.reason


def test_cluster_autoscaler_scale_up_delay_is_honoured() -> None:
    pod = pending(RESOURCE_SHORTAGE[0])
    pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/pod-scale-up-delay"] = "10m"
    pod["metadata"]["creationTimestamp"] = "2027-01-15T08:00:00Z"
    created = datetime.datetime(2027, 1, 15, 8, 0, tzinfo=datetime.UTC).timestamp()
    assert decide_intake(pod, config(), created + 60).intake is Intake.WAIT
    assert decide_intake(pod, config(), created + 601).intake is Intake.PROVISION


@pytest.mark.parametrize(
    "stamp",
    [
        "1970-01-01T00:00:00Z",
        "2000-02-29T12:34:56Z",
        "2026-11-23T02:35:02Z",
        "2100-03-01T00:00:00.123Z",
    ],
)
def test_epoch_seconds_matches_datetime(stamp: str) -> None:
    expected = (
        datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        .replace(microsecond=0)
        .timestamp()
    )
    assert epoch_seconds(stamp) == expected
    assert epoch_seconds("2026-11-23 02:35") is None


def test_a_pod_carrying_any_one_of_lunas_listed_labels_is_managed() -> None:
    listed = config(labels="key1=value1,key2=value2")
    for labels in ({"key1": "value1"}, {"key2": "value2"}):
        pod = pending("0/3 nodes are available: 3 Insufficient cpu.")
        pod["metadata"]["labels"] = labels
        assert decide_intake(pod, listed, NOW).intake is not Intake.IGNORE
    pod = pending("0/3 nodes are available: 3 Insufficient cpu.")
    pod["metadata"]["labels"] = {"key1": "value2"}
    decision = decide_intake(pod, listed, NOW)
    assert decision.intake is Intake.IGNORE and "not managed" in decision.reason


def test_lunas_pod_annotations_mark_pods_as_labels_do() -> None:
    # docs.elotl.co/luna/configuration (v1.1): "the pod configuration must include a label or
    # annotation that matches"; --set podAnnotations='key1=value1,key2=value2'.
    cfg = config(podAnnotations="key1=value1,key2=value2")
    assert cfg.managed_annotations == (("key1", "value1"), ("key2", "value2"))
    pod = pending("0/3 nodes are available: 3 Insufficient cpu.")
    pod["metadata"]["labels"] = {}
    pod["metadata"]["annotations"] = {"key2": "value2"}
    assert decide_intake(pod, cfg, NOW).intake is Intake.PROVISION
    assert decide_intake(pod, config(), NOW).intake is Intake.IGNORE
    pod["metadata"]["annotations"] = {"key2": "other"}
    decision = decide_intake(pod, cfg, NOW)
    assert decision.intake is Intake.IGNORE and "annotation key1=value1" in decision.reason

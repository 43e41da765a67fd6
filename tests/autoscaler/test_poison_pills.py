"""One object must not stop the loop: pods and nodes Gibbous cannot read are set aside with a
Warning event (once per version) and a metric, and every other pod still gets its node.

The objects are the ones a hostile-input run found stopping all scale-up (issue #19)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import generate_latest

from gibbous.core import keys
from gibbous.core.planning.placement import OBSERVED_UTILIZATION
from tests.autoscaler.test_loop import run, setup
from tests.factories import make_pod

UNREADABLE_POD_ANNOTATIONS = {
    keys.INSTANCE_MAX_GPUS: "²",
    keys.INSTANCE_OFFERINGS: "cheap",
    keys.INSTANCE_TYPE_REGEXP: "(",
}


def poison_pods() -> list[dict[str, Any]]:
    exa = make_pod("exa-memory", memory="1E")
    widget = make_pod("exa-widget", annotations={keys.INSTANCE_MAX_GPUS: "①"})
    widget["spec"]["containers"][0]["resources"]["requests"]["example.com/widget"] = "1E"
    return [
        exa,
        widget,
        make_pod("unicode-digits", annotations=UNREADABLE_POD_ANNOTATIONS),
        make_pod("arabic-three", annotations={keys.INSTANCE_MAX_GPUS: "٣"}),
        make_pod("underscored-cost", annotations={keys.INSTANCE_MAX_COST: "1_000"}),
    ]


def test_unreadable_pods_are_set_aside_and_the_others_get_their_nodes() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(*poison_pods(), make_pod("good", cpu="500m"))
    run(clock, autoscaler, 180)
    assert cluster.schedule() == ["default/good"]
    assert len(provider.create_calls) == 1  # one node, for the good pod only

    # Each poison pod has one Warning event naming what is wrong, in the author's words.
    unreadable = cluster.events_for("unicode-digits", keys.EVENT_NODE_ADD_REQUEST_WARNING)
    assert len(unreadable) == 1
    for key, value in UNREADABLE_POD_ANNOTATIONS.items():
        assert key in unreadable[0] and f'"{value}"' in unreadable[0]  # as JSON
    assert '"٣"' in cluster.events_for("arabic-three", keys.EVENT_NODE_ADD_REQUEST_WARNING)[0]
    assert (
        '"1_000"' in cluster.events_for("underscored-cost", keys.EVENT_NODE_ADD_REQUEST_WARNING)[0]
    )
    # 1E is a valid quantity (exa): no internal error, just no instance that large.
    exa = cluster.events_for("exa-memory", keys.EVENT_NODE_ADD_REQUEST_WARNING)
    assert len(exa) == 1 and "cannot obtain a node" in exa[0]
    assert "internal" not in " ".join(m for _, _, m, _ in cluster.events)

    metrics = generate_latest(autoscaler.metrics.registry).decode()
    assert 'gibbous_autoscaler_unreadable_objects_total{kind="Pod"} 4.0' in metrics
    assert "gibbous_autoscaler_loop_errors_total 0.0" in metrics


@pytest.mark.parametrize(
    ("annotation", "label"),
    [
        ({OBSERVED_UTILIZATION: "cpu=1.2.3"}, {}),
        ({OBSERVED_UTILIZATION: "x" * 100_000}, {}),
        ({}, {keys.PRICE_PER_HOUR: "inf"}),
        ({}, {keys.PRICE_PER_HOUR: "1e308"}),
        ({}, {keys.GPU_COUNT: "²"}),
    ],
)
def test_an_unreadable_node_is_reported_once_per_version_and_the_loop_goes_on(
    annotation: dict[str, str], label: dict[str, str]
) -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(make_pod("first", cpu="3"))
    run(clock, autoscaler, 180)
    cluster.schedule()
    (node,) = [n["metadata"]["name"] for n in cluster.nodes()]
    cluster.node_annotations[node] = annotation
    if label:
        provider.instances[next(iter(provider.instances))] = _relabelled(
            provider.instances[next(iter(provider.instances))], label
        )

    cluster.add(make_pod("second", cpu="3"))
    run(clock, autoscaler, 180)
    assert cluster.schedule() == ["default/second"]

    def node_events() -> list[str]:
        return [m for u, r, m, _ in cluster.events if r == keys.EVENT_CANNOT_READ]

    assert len(node_events()) == 1  # once, though every step reads the node
    assert len(node_events()[0]) < 400  # a 100 kB annotation is quoted, not copied
    metrics = generate_latest(autoscaler.metrics.registry).decode()
    assert 'gibbous_autoscaler_unreadable_objects_total{kind="Node"} 1.0' in metrics
    assert "gibbous_autoscaler_loop_errors_total 0.0" in metrics

    # A heartbeat (a new version, the same problems) is not news; a new problem is.
    cluster.node_annotations[node] = {**annotation, "heartbeat": "2"}
    run(clock, autoscaler, 5)
    assert len(node_events()) == 1
    cluster.node_annotations[node] = {**annotation, OBSERVED_UTILIZATION: "cpu=9.9.9"}
    run(clock, autoscaler, 5)
    assert len(node_events()) == 2 and "cpu=9.9.9" in node_events()[1]


def _relabelled(instance: Any, label: dict[str, str]) -> Any:
    return replace(instance, labels={**instance.labels, **label})


def test_a_pod_the_api_server_would_refuse_is_set_aside_naming_the_field() -> None:
    # The required node affinity written as a list (Kubernetes' pod-with-node-affinity.yaml
    # at one commit): read as absent it would get a node; it is set aside instead.
    clock, provider, cluster, autoscaler = setup()
    malformed = make_pod("listed-affinity")
    malformed["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": []}}
            ]
        }
    }
    cluster.add(malformed, make_pod("good", cpu="500m"))
    run(clock, autoscaler, 180)
    assert cluster.schedule() == ["default/good"]
    assert len(provider.create_calls) == 1
    (event,) = cluster.events_for("listed-affinity", keys.EVENT_NODE_ADD_REQUEST_WARNING)
    assert "requiredDuringSchedulingIgnoredDuringExecution: expected an object" in event

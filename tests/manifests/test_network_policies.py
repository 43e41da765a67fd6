"""The chart's NetworkPolicies, evaluated as the Kubernetes NetworkPolicy API defines them
(kubernetes.io/docs/concepts/services-networking/network-policies: a pod selected by a
policy of a direction admits only what some rule of such a policy admits; a rule admits a
connection when its ports list the port (or lists none) and its peers include the other
end (or it lists none); a podSelector peer alone means pods of the policy's namespace).
The objects themselves are checked against the OpenAPI in test_chart.py, as every
rendered object is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from gibbous.devcluster.binaries import OLD_VERSION, current_version
from tests.manifests.test_chart import template

NAMESPACE = "elotl"


@dataclass(frozen=True)
class Peer:
    """The other end of a connection: a pod (namespace and labels) or, with no
    namespace, an address outside the cluster's pods (a control plane, a cloud API)."""

    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)


OUTSIDE = Peer()


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"evaluator reads matchLabels only: {selector}"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def peer_matches(entry: dict[str, Any], policy_namespace: str, peer: Peer) -> bool:
    assert "ipBlock" not in entry, "evaluator does not read ipBlock"
    if peer.namespace is None:
        return False
    pods = entry.get("podSelector")
    namespaces = entry.get("namespaceSelector")
    if namespaces is None and peer.namespace != policy_namespace:
        return False
    if namespaces is not None and not selects(
        namespaces, {**peer.namespace_labels, "kubernetes.io/metadata.name": peer.namespace}
    ):
        return False
    return pods is None or selects(pods, peer.labels)


def admitted(
    objects: list[dict[str, Any]], pod: Peer, direction: str, other: Peer, port: int, *, proto: str
) -> bool:
    """Whether `pod` may receive from (Ingress) or send to (Egress) `other` on `port`."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    policies = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["metadata"]["namespace"] == pod.namespace
        and selects(o["spec"]["podSelector"], pod.labels)
        and direction in o["spec"].get("policyTypes", ["Ingress"])
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get(key) or []:
            ports = rule.get("ports")
            if ports and not any(
                p.get("port") == port and p.get("protocol", "TCP") == proto for p in ports
            ):
                continue
            peers = rule.get(peers_key)
            if not peers or any(peer_matches(e, NAMESPACE, other) for e in peers):
                return True
    return False


def pods_of(objects: list[dict[str, Any]]) -> dict[str, tuple[Peer, list[dict[str, Any]]]]:
    """component -> (its pod as a peer, its container ports)."""
    out = {}
    for deployment in [o for o in objects if o["kind"] == "Deployment"]:
        component = deployment["metadata"]["name"].rsplit("-", 1)[1]
        template_ = deployment["spec"]["template"]
        ports = [p for c in template_["spec"]["containers"] for p in c.get("ports", [])]
        out[component] = (Peer(NAMESPACE, template_["metadata"]["labels"]), ports)
    return out


SOMEONE_IN_THE_NAMESPACE = Peer(NAMESPACE, {"app": "curious"})
MONITORING = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
IMDS_HTTP = 80  # the metadata server's port: credentials of the node's role


@pytest.mark.parametrize("version", [OLD_VERSION, current_version()])
def test_each_component_admits_its_callers_and_no_one_else(version: str) -> None:
    objects = template(version)
    pods = pods_of(objects)
    assert set(pods) == {"webhook", "extender", "scheduler", "autoscaler"}
    webhook, extender, scheduler, autoscaler = (
        pods[c][0] for c in ("webhook", "extender", "scheduler", "autoscaler")
    )

    def ingress(pod: Peer, other: Peer, port: int) -> bool:
        return admitted(objects, pod, "Ingress", other, port, proto="TCP")

    def egress(pod: Peer, other: Peer, port: int, proto: str = "TCP") -> bool:
        return admitted(objects, pod, "Egress", other, port, proto=proto)

    # The webhook: the API server's address is not predictable, so its port from anywhere.
    assert ingress(webhook, OUTSIDE, 8443) and ingress(webhook, MONITORING, 8443)
    assert not ingress(webhook, SOMEONE_IN_THE_NAMESPACE, 8080)
    # The extender's decisions: the Gibbous scheduler only.
    assert ingress(extender, scheduler, 8888)
    for stranger in (SOMEONE_IN_THE_NAMESPACE, MONITORING, OUTSIDE, autoscaler):
        assert not ingress(extender, stranger, 8888), stranger
    # Metrics: the release's namespace by default.
    for pod, port in ((autoscaler, 8080), (extender, 8889), (scheduler, 10259)):
        assert ingress(pod, SOMEONE_IN_THE_NAMESPACE, port), pod
        assert not ingress(pod, MONITORING, port) and not ingress(pod, OUTSIDE, port), pod
        assert not ingress(pod, SOMEONE_IN_THE_NAMESPACE, 9999), pod
    # Egress: the API server by port and DNS; nothing else, above all not the node's
    # metadata server. The autoscaler's is open (cloud APIs, workload identity).
    for pod in (webhook, extender, scheduler):
        assert egress(pod, OUTSIDE, 443) and egress(pod, OUTSIDE, 6443)
        assert egress(pod, OUTSIDE, 53, "UDP") and egress(pod, OUTSIDE, 53, "TCP")
        assert not egress(pod, OUTSIDE, IMDS_HTTP) and not egress(pod, autoscaler, 8080)
    assert egress(scheduler, extender, 8888) and not egress(webhook, extender, 8888)
    assert egress(autoscaler, OUTSIDE, IMDS_HTTP)
    # Every port a container declares is reachable by someone: no policy misses a port.
    for component, (pod, ports) in pods.items():
        for declared in ports:
            callers = (OUTSIDE, SOMEONE_IN_THE_NAMESPACE, scheduler)
            assert any(ingress(pod, c, declared["containerPort"]) for c in callers), component


def test_metrics_from_admits_the_named_peers() -> None:
    objects = template(
        current_version(),
        (),
        (
            "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels"
            ".kubernetes\\.io/metadata\\.name=monitoring",
        ),
    )
    pods = pods_of(objects)
    for component, port in (("autoscaler", 8080), ("extender", 8889), ("scheduler", 10259)):
        pod = pods[component][0]
        assert admitted(objects, pod, "Ingress", MONITORING, port, proto="TCP"), component
        assert not admitted(objects, pod, "Ingress", SOMEONE_IN_THE_NAMESPACE, port, proto="TCP")
    assert not admitted(objects, pods["extender"][0], "Ingress", MONITORING, 8888, proto="TCP")


def test_without_the_gibbous_scheduler_the_extender_port_is_open() -> None:
    # The scheduler calling it is the operator's, at an unknown address; the client
    # certificate is the guard.
    objects = template(current_version(), (), ("scheduler.enabled=false",))
    extender = pods_of(objects)["extender"][0]
    assert admitted(objects, extender, "Ingress", OUTSIDE, 8888, proto="TCP")
    assert not [o for o in objects if o["metadata"]["name"].endswith("-scheduler")]


def test_policies_can_be_turned_off() -> None:
    objects = template(current_version(), (), ("networkPolicy.enabled=false",))
    assert not [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert len([o for o in template(current_version()) if o["kind"] == "NetworkPolicy"]) == 4

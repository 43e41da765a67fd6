"""Issue #19 against the real control plane: the objects that stopped all scale-up (a pod with
a `1E` quantity, pods with Unicode digits in Luna annotations, a node annotation that does
not parse, a price label of `inf`) are created through the API server; another managed pod
still gets its node in the usual time, and each bad object carries a Warning event."""

from __future__ import annotations

import functools
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.core import keys
from gibbous.core.planning.placement import OBSERVED_UTILIZATION
from gibbous.core.settings.config import Config
from gibbous.devcluster.controlplane import ControlPlane
from tests.e2e.conftest import SUITE_LABEL, eventually, make_namespace, running_extender
from tests.e2e.test_autoscaler_e2e import clean_up, diagnosis, start_service
from tests.factories import api_pod, config

pytestmark = pytest.mark.e2e

SCHEDULER = "gibbous-poison-e2e"
NAMESPACE = "poison-e2e"
CLUSTER_ID = "e2e-poison"
# What the other e2e modules allow a pending pod to wait for its kwok node (boot 2 s).
USUAL_S = 60


def suite_config() -> Config:
    return config(clusterID=CLUSTER_ID, placeNodeSelector=True, scaleUpTimeout="2m")


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[str]:
    """The extender's URL, once the scheduler calling it runs."""
    with running_extender(api, suite_config()) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield url


def managed(name: str, **options: Any) -> dict[str, Any]:
    body = api_pod(name, node_selector={SUITE_LABEL: "poison"}, **options)
    body["spec"]["schedulerName"] = SCHEDULER
    return body


def poison_pods() -> list[dict[str, Any]]:
    exa = managed("exa-memory", cpu="100m", memory="1E")
    widget = managed("exa-widget", cpu="100m")
    widget["spec"]["containers"][0]["resources"]["requests"]["example.com/widget"] = "1E"
    widget["spec"]["containers"][0]["resources"]["limits"] = {"example.com/widget": "1E"}
    digits = managed(
        "unicode-digits",
        cpu="100m",
        annotations={
            keys.INSTANCE_MAX_GPUS: "²",
            keys.INSTANCE_OFFERINGS: "cheap",
            keys.INSTANCE_TYPE_REGEXP: "(",
        },
    )
    circled = managed("circled-one", cpu="100m", annotations={keys.INSTANCE_MAX_GPUS: "①"})
    return [exa, widget, digits, circled]


def events_about(core: client.CoreV1Api, namespace: str, name: str, reason: str) -> list[str]:
    selector = f"involvedObject.name={name},reason={reason}"
    return [e.message for e in core.list_namespaced_event(namespace, field_selector=selector).items]


def bound_node(core: client.CoreV1Api, name: str) -> str | None:
    node: str | None = core.read_namespaced_pod(name, NAMESPACE).spec.node_name
    return node


def test_poison_objects_are_set_aside_and_other_pods_still_get_nodes(
    api: client.ApiClient, scheduler: str
) -> None:
    make_namespace(api, NAMESPACE)
    core = client.CoreV1Api(api)
    service = start_service(api, suite_config(), identity="autoscaler-poison", boot_s=2)
    try:
        for body in poison_pods():
            core.create_namespaced_pod(NAMESPACE, body)
        core.create_namespaced_pod(NAMESPACE, managed("good", cpu="3"))
        try:
            first = eventually(
                lambda: bound_node(core, "good"), timeout_s=USUAL_S, what="the good pod bound"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; {diagnosis(core, NAMESPACE, service)}") from None

        # Every poison pod has its Warning, in words its author can act on.
        def warned(name: str) -> list[str]:
            return events_about(core, NAMESPACE, name, keys.EVENT_NODE_ADD_REQUEST_WARNING)

        digits = eventually(lambda: warned("unicode-digits"), what="event on unicode-digits")
        assert len(digits) == 1
        assert 'instance-max-gpus: invalid value "²"' in digits[0]
        assert 'instance-offerings: invalid value "cheap"' in digits[0]
        assert keys.INSTANCE_TYPE_REGEXP in digits[0]
        assert '"①"' in eventually(lambda: warned("circled-one"), what="event on circled-one")[0]
        for name in ("exa-memory", "exa-widget"):
            message = eventually(functools.partial(warned, name), what=f"event on {name}")[0]
            assert "cannot obtain a node" in message and "internal" not in message

        # Now the node itself: an annotation and a label nothing can read.
        core.patch_node(
            first,
            {
                "metadata": {
                    "annotations": {OBSERVED_UTILIZATION: "cpu=1.2.3"},
                    "labels": {keys.PRICE_PER_HOUR: "inf"},
                }
            },
        )
        core.create_namespaced_pod(NAMESPACE, managed("second", cpu="3"))
        try:
            eventually(
                lambda: bound_node(core, "second"), timeout_s=USUAL_S, what="the second pod bound"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; {diagnosis(core, NAMESPACE, service)}") from None
        unreadable = eventually(
            lambda: events_about(core, "default", first, keys.EVENT_CANNOT_READ),
            what="the node's GibbousCannotRead event",
        )
        assert len(unreadable) == 1
        assert OBSERVED_UTILIZATION in unreadable[0] and keys.PRICE_PER_HOUR in unreadable[0]
        assert service.autoscaler.metrics.loop_errors._value.get() == 0
        # The extender's node watch read the node on (in part) and counts it.
        metrics = urllib.request.urlopen(f"{scheduler}/metrics", timeout=5).read().decode()
        (line,) = [
            m
            for m in metrics.splitlines()
            if m.startswith("gibbous_extender_unreadable_node_reports ")
        ]
        assert float(line.split()[1]) >= 1
    finally:
        service.stop()
        clean_up(api, NAMESPACE, CLUSTER_ID)

"""Real control planes (etcd + kube-apiserver + kube-controller-manager), one per
Kubernetes release, each started once for the session and shared by the modules using it.

Modules run against the current release (binaries from KUBE_APISERVER_BIN-style variables,
KUBEBUILDER_ASSETS, or built from the Go module proxy on first use). A module that sets
`RELEASES = ("current", "1.20")` runs once per release listed: the old-version target,
v1.20.2 built from Debian's source, covers what depends on the version (no scheduling
gates, policy/v1beta1 eviction, the v1beta1 scheduler configuration). See
gibbous/devcluster/binaries.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from kubernetes import client, config

from gibbous.autoscaler import launchreview
from gibbous.autoscaler.cloud.base import CloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.settings.config import Config
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import ControlPlane, ExtenderTLS
from gibbous.extender.app import create_app
from gibbous.extender.state import InformerView
from gibbous.kubeapi import parse_version
from gibbous.serving import Listen, TLSServer
from tests.factories import api_pod

T = TypeVar("T")

# A pod's nodeSelector on this label, copied onto its node by placeNodeSelector, keeps a
# module's pods on the nodes made for that module.
SUITE_LABEL = "e2e.gibbous.dev/suite"
SPOT_TOLERATION = {
    "key": keys.SPOT_TAINT_KEY,
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def suite_pod(
    name: str,
    suite: str,
    *,
    scheduler: str,
    cpu: str,
    gpus: int = 0,
    spot: bool = False,
    gated: bool = False,
) -> dict[str, Any]:
    """A managed pod for `scheduler`, held to `suite`'s nodes; `spot` allows spot (and
    tolerates its taint, as the webhook would add); `gated` carries the provisioning gate
    the webhook adds to bin-select pods with provisioningGate on."""
    body = api_pod(
        name,
        cpu=cpu,
        memory="256Mi",
        gpus=gpus,
        annotations={keys.INSTANCE_OFFERINGS: "spot"} if spot else None,
        node_selector={SUITE_LABEL: suite},
        tolerations=[SPOT_TOLERATION] if spot else None,
    )
    body["spec"]["schedulerName"] = scheduler
    # Deleted as users delete, with a grace period: a short one, as its author chose.
    body["spec"]["terminationGracePeriodSeconds"] = 1
    if gated:
        body["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    return body


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    releases = getattr(metafunc.module, "RELEASES", None)
    if releases and "release" in metafunc.fixturenames:
        metafunc.parametrize("release", releases, indirect=True, scope="module")


@pytest.fixture(scope="module")
def release(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "current"))


@pytest.fixture(scope="session")
def control_planes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], ControlPlane]]:
    """The control plane of a release, started on first use and stopped at the end."""
    planes: dict[str, ControlPlane] = {}

    def plane_of(name: str) -> ControlPlane:
        if name not in planes:
            plane = ControlPlane(
                find_binaries(release=name), tmp_path_factory.mktemp(f"control-plane-{name}")
            )
            plane.start()
            planes[name] = plane
        return planes[name]

    yield plane_of
    for plane in planes.values():
        plane.stop()


@pytest.fixture(scope="module")
def control_plane(control_planes: Callable[[str], ControlPlane], release: str) -> ControlPlane:
    return control_planes(release)


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration
    )
    return client.ApiClient(configuration)


def eventually(
    probe: Callable[[], T | None], *, timeout_s: float = 60, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy (API state settles asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def server_minor(api: client.ApiClient) -> int:
    return int("".join(ch for ch in client.VersionApi(api).get_code().minor if ch.isdigit()))


def make_namespace(api: client.ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    """Create a namespace and wait until pods can be created in it (its default
    ServiceAccount exists and, before 1.24, has its token Secret)."""
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    needs_token = server_minor(api) < 24

    def default_account() -> Any:
        try:
            account = core.read_namespaced_service_account("default", name)
        except client.ApiException:
            return None
        return account if account.secrets or not needs_token else None

    eventually(default_account, what=f"default ServiceAccount in {name}")


def log_path(plane: ControlPlane, name: str) -> Path:
    return plane.directory / f"{name}.log"


def log_of(plane: ControlPlane, name: str) -> str:
    return log_path(plane, name).read_text(errors="replace")[-5000:]


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_extender(
    api: client.ApiClient, configuration: Config, tls: ExtenderTLS | None = None
) -> Iterator[str]:
    """The extender app on a free loopback port with live caches; yields its URL (https,
    clients' certificates required, with `tls`)."""
    view = InformerView(api)
    view.start()
    app = create_app(configuration, view)
    server: uvicorn.Server | TLSServer
    if tls is None:
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
    else:
        server = TLSServer(
            app,
            Listen("127.0.0.1", 0),
            str(tls.cert),
            str(tls.key),
            client_ca=str(tls.client_ca),
            log_level="warning",
        )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, what="extender server")
        if isinstance(server, TLSServer):
            port = server.bound_port()
        else:
            port = server.servers[0].sockets[0].getsockname()[1]
        eventually(view.ready, what="extender caches")
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        if isinstance(server, TLSServer):
            server.stop()
        else:
            server.should_exit = True
        view.stop()


def start_autoscaler(
    api: client.ApiClient,
    provider: CloudProvider,
    cfg: Config,
    identity: str,
    *,
    kubelet: Callable[[], None] | None = None,
) -> AutoscalerService:
    """An autoscaler process's parts in this process: loop, node lifecycle, caches (and the
    kwok provider's kubelet stand-in, when given)."""
    version = client.VersionApi(api).get_code()
    cluster = KubeCluster(
        api, identity=identity, server_version=parse_version(version.major, version.minor)
    )
    autoscaler = Autoscaler(cfg, provider, cluster, clock=time.time)
    service = AutoscalerService(
        autoscaler,
        cluster,
        lifecycle=NodeLifecycle(autoscaler, cluster, clock=time.time),
        period_s=0.3,
        kubelet=kubelet,
        kubelet_period_s=1.0,
    )
    service.start()
    return service


def crash(service: AutoscalerService) -> None:
    """Stop as a killed process does: no Lease released, launches in flight left."""
    service.stopped.set()
    service.cluster.stop()


def bound_pods(core: client.CoreV1Api, namespace: str, names: list[str]) -> dict[str, str] | None:
    """Pod name -> node for `names`, once every one of them is bound."""
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(namespace).items}
    nodes = {n: pods[n].spec.node_name for n in names if n in pods and pods[n].spec.node_name}
    return nodes if len(nodes) == len(names) else None


def repair_events(core: client.CoreV1Api) -> list[str]:
    """What the autoscaler had to patch onto nodes after registration."""
    selector = f"reason={keys.EVENT_NODE_REPAIRED}"
    return [e.message for e in core.list_namespaced_event("default", field_selector=selector).items]


def delete_pods(core: client.CoreV1Api, namespace: str, names: list[str]) -> None:
    """Delete as users do, with the pods' grace period, and wait until they are gone."""
    for name in names:
        try:
            core.delete_namespaced_pod(name, namespace)
        except client.ApiException as error:
            if error.status != 404:
                raise
    eventually(
        lambda: (
            not {p.metadata.name for p in core.list_namespaced_pod(namespace).items} & set(names)
        ),
        timeout_s=60,
        what="pods gone (the node agent finishes deletions after the grace period)",
    )


@pytest.fixture(autouse=True, scope="module")
def leave_the_cluster_as_found(api: client.ApiClient) -> Iterator[None]:
    """Modules share one control plane: what a module adds (namespaces with their pods,
    nodes) goes when it ends, so a later module's autoscaler does not see an earlier
    module's pending pods or spare nodes."""
    core = client.CoreV1Api(api)
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    nodes = {n.metadata.name for n in core.list_node().items}
    yield
    for namespace in core.list_namespace().items:
        name = namespace.metadata.name
        if name in namespaces:
            continue
        # No kubelet confirms deletions here: remove pods at once, then the namespace.
        for pod in core.list_namespaced_pod(name).items:
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_pod(pod.metadata.name, name, grace_period_seconds=0)
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)
    for node in core.list_node().items:
        if node.metadata.name not in nodes:
            with contextlib.suppress(client.ApiException):
                core.delete_node(node.metadata.name)


@pytest.fixture
def quick_idle_listing(monkeypatch: pytest.MonkeyPatch) -> float:
    """The in-process autoscaler lists its cloud every 5 s when nothing is in flight, not
    every 30 s: tests that wait on idle listings (scale-down of a restarted launch, the
    orphan rule) wait seconds, not minutes. Returns the period."""
    monkeypatch.setattr(launchreview, "LIST_PERIOD_IDLE_S", 5.0)
    return 5.0

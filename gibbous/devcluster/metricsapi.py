"""`metrics.k8s.io/v1beta1` for the dev cluster, where no kubelet measures anything: node
and pod metrics served through the API server's aggregation layer, as metrics-server
serves them, so `kubectl top` works and hot-node mitigation reads them through the real
API server.

Usage is what a pod says it uses: the annotation `gibbous.dev/simulated-usage`
(`cpu=1800m,memory=1Gi`; either part may be left out), else its requests. A pod counts
while it is Running on a node; its usage is reported on its first container (PodMetrics
carries usage per container, and readers sum them). A node's usage is the sum of its
pods'. As metrics-server, CPU is written in nanocores (`1800000000n`) and memory in Ki.

Registration: a Service without selector and its Endpoints (this machine's non-loopback
address: Endpoints refuse loopback ones, and the API server runs with aggregator routing)
and the APIService `v1beta1.metrics.k8s.io` with this server's CA. The server accepts
only clients with a certificate of the API server's front-proxy CA; it does not run the
delegated authorization metrics-server does (the dev cluster has one, admin, user).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gibbous.certs.authority import generate_ca, generate_serving, write_private
from gibbous.core import keys
from gibbous.core.errors import GibbousError
from gibbous.core.grammar.quantity import parse_quantity
from gibbous.kubeapi import load_client_config, rfc3339
from gibbous.serving import Listen, TLSServer

GROUP_VERSION = "metrics.k8s.io/v1beta1"
SERVICE = ("kube-system", "gibbous-dev-metrics")
API_SERVICE = "v1beta1.metrics.k8s.io"
WINDOW = "15s"  # metrics-server's shipped --metric-resolution
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
         "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
         "verbs": ["get", "list"]},
    ],
}  # fmt: skip


def pod_usage(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(CPU nanocores, memory bytes) the pod uses: its annotation, else its requests."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    requested: dict[str, float] = {"cpu": 0.0, "memory": 0.0}
    for container in containers:
        requests = ((container.get("resources") or {}).get("requests")) or {}
        for name in requested:
            if name in requests:
                requested[name] += _quantity(requests[name], f"requests.{name}")
    declared = annotations.get(keys.SIMULATED_USAGE)
    if declared:
        for part in str(declared).split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or name not in requested:
                raise GibbousError(
                    f"{keys.SIMULATED_USAGE}: {part.strip()!r}: expected cpu=QUANTITY or "
                    "memory=QUANTITY"
                )
            requested[name] = _quantity(value, f"{keys.SIMULATED_USAGE} {name}")
    return round(requested["cpu"] * 1e9), round(requested["memory"])


def _quantity(value: object, field: str) -> float:
    return float(parse_quantity(value, field))


def _cpu(nanocores: int) -> str:
    return f"{nanocores}n"


def _memory(size: int) -> str:
    return f"{size // 1024}Ki" if size % 1024 == 0 else str(size)


class MetricsSource:
    """Reads the cluster each request: the dev cluster is small, and the answer is current."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def running_pods(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"field_selector": "status.phase=Running"}
        if selector:
            kwargs["label_selector"] = selector
        listed = (
            self.core.list_namespaced_pod(namespace, **kwargs)
            if namespace
            else self.core.list_pod_for_all_namespaces(**kwargs)
        )
        pods: list[dict[str, Any]] = self.core.api_client.sanitize_for_serialization(listed.items)
        return [p for p in pods if (p.get("spec") or {}).get("nodeName")]

    def nodes(self, selector: str | None) -> list[dict[str, Any]]:
        listed = self.core.list_node(label_selector=selector or "")
        nodes: list[dict[str, Any]] = self.core.api_client.sanitize_for_serialization(listed.items)
        return nodes


def create_app(source: MetricsSource, clock: Any = time.time) -> Starlette:
    def item_meta(obj: Mapping[str, Any], namespaced: bool) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        out = {"name": meta.get("name"), "creationTimestamp": rfc3339(clock())}
        if namespaced:
            out["namespace"] = meta.get("namespace")
        out["labels"] = meta.get("labels") or {}
        return out

    def pod_item(pod: Mapping[str, Any]) -> dict[str, Any]:
        cpu, memory = pod_usage(pod)
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        containers = [
            {
                "name": name,
                "usage": {"cpu": _cpu(cpu if i == 0 else 0), "memory": _memory(memory if i == 0 else 0)},
            }
            for i, name in enumerate(names)
        ]  # fmt: skip
        return {
            "metadata": item_meta(pod, True),
            "timestamp": rfc3339(clock()),
            "window": WINDOW,
            "containers": containers,
        }

    def node_items(selector: str | None) -> list[dict[str, Any]]:
        totals: dict[str, list[int]] = {}
        for pod in source.running_pods(None, None):
            cpu, memory = pod_usage(pod)
            total = totals.setdefault(pod["spec"]["nodeName"], [0, 0])
            total[0] += cpu
            total[1] += memory
        return [
            {
                "metadata": item_meta(node, False),
                "timestamp": rfc3339(clock()),
                "window": WINDOW,
                "usage": {
                    "cpu": _cpu(totals.get(node["metadata"]["name"], [0, 0])[0]),
                    "memory": _memory(totals.get(node["metadata"]["name"], [0, 0])[1]),
                },
            }
            for node in sorted(source.nodes(selector), key=lambda n: n["metadata"]["name"])
        ]

    def listing(kind: str, items: list[dict[str, Any]]) -> JSONResponse:
        return JSONResponse(
            {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
        )

    def not_found(what: str) -> JSONResponse:
        return JSONResponse(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": f"{what} not found", "reason": "NotFound", "code": 404},
            status_code=404,
        )  # fmt: skip

    def refused(error: GibbousError) -> JSONResponse:
        return JSONResponse(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": str(error), "reason": "BadRequest", "code": 400},
            status_code=400,
        )  # fmt: skip

    async def resources(request: Request) -> Response:
        return JSONResponse(RESOURCES)

    def answer(kind: str, items: list[dict[str, Any]], name: str | None) -> Response:
        """The list, or the one item a GET by name asks for."""
        if name is None:
            return listing(f"{kind}List", items)
        found = [i for i in items if i["metadata"]["name"] == name]
        if not found:
            return not_found(f"{kind.lower()} {name!r}")
        return JSONResponse({"kind": kind, "apiVersion": GROUP_VERSION, **found[0]})

    async def nodes(request: Request) -> Response:
        try:
            items = node_items(request.query_params.get("labelSelector"))
        except GibbousError as error:
            return refused(error)
        return answer("NodeMetrics", items, request.path_params.get("name"))

    async def pods(request: Request) -> Response:
        namespace = request.path_params.get("namespace")
        try:
            running = source.running_pods(namespace, request.query_params.get("labelSelector"))
            items = [pod_item(p) for p in running]
        except GibbousError as error:
            return refused(error)
        return answer("PodMetrics", items, request.path_params.get("name"))

    async def healthy(request: Request) -> Response:
        return Response("ok")

    base = f"/apis/{GROUP_VERSION}"
    return Starlette(
        routes=[
            Route(base, resources),
            Route(f"{base}/nodes", nodes),
            Route(f"{base}/nodes/{{name}}", nodes),
            Route(f"{base}/pods", pods),
            Route(f"{base}/namespaces/{{namespace}}/pods", pods),
            Route(f"{base}/namespaces/{{namespace}}/pods/{{name}}", pods),
            Route("/healthz", healthy),
            Route("/readyz", healthy),
        ]
    )


def host_address() -> str:
    """This machine's address on its default route: Endpoints refuse loopback ones."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 1))  # no packet is sent for UDP connect
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        raise GibbousError(
            "metrics.k8s.io needs a non-loopback address on this machine for its Endpoints"
        )
    return address


class MetricsApi:
    """The server and its registration, started and stopped together."""

    def __init__(self, api: client.ApiClient, front_proxy_ca: Path) -> None:
        self.api = api
        self.front_proxy_ca = front_proxy_ca
        self.server: TLSServer | None = None
        self.directory = tempfile.TemporaryDirectory(prefix="gibbous-metrics-")

    def start(self, timeout_s: float = 60.0) -> None:
        host = host_address()
        now = datetime.datetime.now(datetime.UTC)
        ca = generate_ca(common_name="gibbous-dev-metrics-ca", days=30, now=now)
        namespace, name = SERVICE
        serving = generate_serving(
            ca,
            dns_names=[f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"],
            ip_addresses=[host],
            days=30,
            now=now,
        )
        directory = Path(self.directory.name)
        (directory / "tls.crt").write_bytes(serving.cert_pem)
        write_private(directory / "tls.key", serving.key_pem)
        # The shared server (request deadline, TLS handshake within it, header limit): this
        # one listens on a non-loopback address.
        self.server = TLSServer(
            create_app(MetricsSource(self.api)),
            Listen(host, 0),
            str(directory / "tls.crt"),
            str(directory / "tls.key"),
            client_ca=str(self.front_proxy_ca),
            log_level="warning",
        )
        threading.Thread(target=self.server.run, name="metrics-api", daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline:
                raise GibbousError("the metrics.k8s.io server did not start")
            time.sleep(0.05)
        port = self.server.bound_port()
        self._register(host, port, ca.cert_pem)
        self._wait_available(deadline)

    def _register(self, host: str, port: int, ca_pem: bytes) -> None:
        namespace, name = SERVICE
        core = client.CoreV1Api(self.api)
        service = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        }
        endpoints = {
            "metadata": {"name": name, "namespace": namespace},
            "subsets": [{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port}]}],
        }
        api_service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"namespace": namespace, "name": name, "port": 443},
                "caBundle": base64.b64encode(ca_pem).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
        registration = client.ApiregistrationV1Api(self.api)
        for create, replace, body in (
            (
                lambda b: core.create_namespaced_service(namespace, b),
                lambda b: core.replace_namespaced_service(name, namespace, b),
                service,
            ),
            (
                lambda b: core.create_namespaced_endpoints(namespace, b),
                lambda b: core.replace_namespaced_endpoints(name, namespace, b),
                endpoints,
            ),
            (
                registration.create_api_service,
                lambda b: registration.replace_api_service(API_SERVICE, b),
                api_service,
            ),
        ):
            try:
                create(body)
            except ApiException as error:
                if error.status != 409:
                    raise
                # A leftover of an earlier run: take it over at its current version.
                self._replace_current(replace, body)

    def _replace_current(self, replace: Any, body: dict[str, Any]) -> None:
        namespace, name = SERVICE
        core = client.CoreV1Api(self.api)
        registration = client.ApiregistrationV1Api(self.api)
        if body.get("kind") == "APIService":
            current = registration.read_api_service(API_SERVICE)
        elif "subsets" in body:
            current = core.read_namespaced_endpoints(name, namespace)
        else:
            current = core.read_namespaced_service(name, namespace)
            body["spec"]["clusterIP"] = current.spec.cluster_ip
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        replace(body)

    def _wait_available(self, deadline: float) -> None:
        registration = client.ApiregistrationV1Api(self.api)
        while True:
            status = registration.read_api_service(API_SERVICE).status
            conditions = {c.type: c for c in (status.conditions or [])} if status else {}
            available = conditions.get("Available")
            if available is not None and available.status == "True":
                return
            if time.monotonic() > deadline:
                message = available.message if available is not None else "no status yet"
                raise GibbousError(f"APIService {API_SERVICE} not available: {message}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Unregister first: an APIService whose server is gone breaks discovery."""
        namespace, name = SERVICE
        with contextlib.suppress(ApiException):
            client.ApiregistrationV1Api(self.api).delete_api_service(API_SERVICE)
        core = client.CoreV1Api(self.api)
        with contextlib.suppress(ApiException):
            core.delete_namespaced_service(name, namespace)
        with contextlib.suppress(ApiException):
            core.delete_namespaced_endpoints(name, namespace)
        if self.server is not None:
            self.server.stop()
        self.directory.cleanup()


def main(argv: list[str] | None = None) -> int:
    """`python -m gibbous.devcluster.metricsapi`: serve until SIGTERM (`dev-cluster up`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--front-proxy-ca", required=True, type=Path)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    served = MetricsApi(client.ApiClient(load_client_config(args.kubeconfig)), args.front_proxy_ca)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    served.start()
    if args.ready_file is not None:
        args.ready_file.write_text("ready\n")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    served.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The extender as an ASGI app: POST /filter, POST /prioritize, GET /healthz, /readyz, /metrics.

Wire format (k8s.io/kube-scheduler/extender/v1): no json tags, so keys are Go
field names: ExtenderArgs {Pod, Nodes, NodeNames}; ExtenderFilterResult {Nodes,
NodeNames, FailedNodes, FailedAndUnresolvableNodes, Error}; HostPriorityList
[{Host, Score}]. With nodeCacheCapable the scheduler sends NodeNames (Nodes
null) and reads NodeNames back, each of which must be from the input; otherwise
full Nodes both ways. Replies use the request's form. An internal failure sets
Error (the scheduler skips an ignorable extender), never hangs, never 500s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gibbous.core.errors import GibbousError, quoted
from gibbous.core.planning.placement import (
    NodeView,
    is_managed_pod,
    judge_nodes,
    pod_facts,
    score_nodes,
)
from gibbous.core.settings.config import Config
from gibbous.extender.state import ClusterView
from gibbous.kubecache import register_cache_metrics
from gibbous.nodeviews import ViewCache
from gibbous.serving import read_body

log = logging.getLogger("gibbous.extender")

MAX_BODY_BYTES = 64 * 1024 * 1024  # a full NodeList of 5,000 nodes is tens of MB
JSON = "application/json"


class BadArgs(ValueError):
    pass


def decode_args(
    body: bytes,
) -> tuple[dict[str, Any], list[dict[str, Any]] | None, list[str] | None]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadArgs(f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadArgs("body is not a JSON object")
    pod = document.get("Pod")
    if not isinstance(pod, dict):
        raise BadArgs("Pod is missing or not an object")
    nodes = document.get("Nodes")
    names = document.get("NodeNames")
    if nodes is not None:
        if not isinstance(nodes, dict) or not isinstance(nodes.get("items") or [], list):
            raise BadArgs("Nodes is not a NodeList")
        items = nodes.get("items") or []
        for index, node in enumerate(items):
            meta = node.get("metadata") if isinstance(node, dict) else None
            if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                raise BadArgs(f"Nodes.items[{index}] has no metadata.name string")
        return pod, items, None
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadArgs("NodeNames is not a list of strings")
        return pod, None, names
    return pod, [], None


class ExtenderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gibbous_extender_requests",
            "Extender calls",
            ["verb", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gibbous_extender_request_duration_seconds",
            "Time to answer",
            ["verb"],
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.rejections = Counter(
            "gibbous_extender_rejected_nodes",
            "Nodes filtered out",
            ["kind"],
            registry=self.registry,
        )


class SentNodeViews:
    """Views of the Nodes a full-NodeList request carries, reused by the next request.

    The scheduler sends mostly the same nodes call after call, but a request's nodes are
    its sender's word, not the cluster's: a view is reused only for a node equal to the one
    it was built from (a node named like a real one, with its resourceVersion and an added
    taint, is a different node), and only the last request's views are kept, so memory
    follows the size of one request (at most MAX_BODY_BYTES), not the number of requests."""

    def __init__(self, time_slices: int) -> None:
        self.builder = ViewCache(time_slices)
        self.previous: dict[str, tuple[dict[str, Any], NodeView]] = {}

    def views(self, nodes: list[dict[str, Any]]) -> list[NodeView]:
        current: dict[str, tuple[dict[str, Any], NodeView]] = {}
        out = []
        for node in nodes:
            name = node["metadata"]["name"]
            kept = self.previous.get(name)
            view = kept[1] if kept is not None and kept[0] == node else self.builder.build(node)
            current[name] = (node, view)
            out.append(view)
        self.previous = current
        return out


def create_app(
    config: Config, cluster: ClusterView, metrics: ExtenderMetrics | None = None
) -> Starlette:
    metrics = metrics or ExtenderMetrics()
    sent_views = SentNodeViews(config.nvidia_gpu_time_slices)
    Gauge(
        "gibbous_extender_unreadable_node_reports",
        "Times a node's problems changed to ones the extender could read only in part (a "
        "label or annotation that does not parse was left out)",
        registry=metrics.registry,
    ).set_function(lambda: float(getattr(cluster, "unreadable", 0)))
    informers = getattr(cluster, "informers", None)
    if informers:
        register_cache_metrics(metrics.registry, "gibbous_extender", informers)

    def views(
        nodes: list[dict[str, Any]] | None, names: list[str] | None
    ) -> tuple[list[NodeView], list[str]]:
        """Node views to judge, plus names we cannot judge (not in the cache yet): those pass."""
        if nodes is not None:
            return sent_views.views(nodes), []
        return cluster.views_for(names or [])

    def filter_reply(
        pod: dict[str, Any], nodes: list[dict[str, Any]] | None, names: list[str] | None
    ) -> dict[str, Any]:
        if not is_managed_pod(pod, config):
            return {
                "Nodes": {"metadata": {}, "items": nodes} if nodes is not None else None,
                "NodeNames": names,
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": {},
                "Error": "",
            }
        facts = pod_facts(pod, config)
        judged, unknown = views(nodes, names)
        # Permanent rejections go in both maps: FailedAndUnresolvableNodes takes precedence
        # where the scheduler knows it (>= 1.21); older schedulers only read FailedNodes.
        passed, failed, unresolvable = judge_nodes(
            facts,
            judged,
            node_reuse=config.bin_select_node_reuse,
            reserved_for_pending=cluster.is_pending,
        )
        passed.update(unknown)
        metrics.rejections.labels("transient").inc(len(failed) - len(unresolvable))
        metrics.rejections.labels("permanent").inc(len(unresolvable))
        if nodes is not None:
            kept = [n for n in nodes if n["metadata"]["name"] in passed]
            return {
                "Nodes": {"metadata": {}, "items": kept},
                "NodeNames": None,
                "FailedNodes": failed,
                "FailedAndUnresolvableNodes": unresolvable,
                "Error": "",
            }
        return {
            "Nodes": None,
            "NodeNames": [n for n in names or [] if n in passed],
            "FailedNodes": failed,
            "FailedAndUnresolvableNodes": unresolvable,
            "Error": "",
        }

    def prioritize_reply(
        pod: dict[str, Any], nodes: list[dict[str, Any]] | None, names: list[str] | None
    ) -> list[dict[str, Any]]:
        order = [n["metadata"]["name"] for n in nodes] if nodes is not None else list(names or [])
        if not is_managed_pod(pod, config):
            return [{"Host": name, "Score": 0} for name in order]
        facts = pod_facts(pod, config)
        judged, _ = views(nodes, names)
        scores = dict(score_nodes(facts, judged, cluster.used(), config))
        return [{"Host": name, "Score": scores.get(name, 0)} for name in order]

    def prioritize_error(
        _: str, __: dict[str, Any], nodes: list[dict[str, Any]] | None, names: list[str] | None
    ) -> list[dict[str, Any]]:
        """Every node scored 0: a valid HostPriorityList that changes no ranking."""
        order = [n["metadata"]["name"] for n in nodes] if nodes is not None else names or []
        return [{"Host": name, "Score": 0} for name in order]

    def endpoint(
        verb: str, decide: Callable[..., Any], on_error: Callable[..., Any]
    ) -> Callable[[Request], Any]:
        counted = {
            o: metrics.requests.labels(verb, o)
            for o in ("ok", "bad_request", "unreadable_pod", "internal_error", "too_large")
        }
        latency = metrics.latency.labels(verb)

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            body = await read_body(request.scope, request.receive, MAX_BODY_BYTES)
            if body is None:
                counted["too_large"].inc()
                return PlainTextResponse(
                    f"request body larger than {MAX_BODY_BYTES} bytes", status_code=413
                )
            try:
                pod, nodes, names = decode_args(body)
            except BadArgs as error:
                counted["bad_request"].inc()
                return PlainTextResponse(f"bad ExtenderArgs: {error}", status_code=400)
            try:
                reply = decide(pod, nodes, names)
                counted["ok"].inc()
            except GibbousError as error:
                # The pod's own content (a request or annotation Gibbous cannot read): the
                # scheduler shows this message in the pod's events, worded for its author.
                counted["unreadable_pod"].inc()
                reply = on_error(f"gibbous: cannot read the pod: {error}", pod, nodes, names)
            except Exception as error:
                log.exception("internal error in %s", verb)
                counted["internal_error"].inc()
                reply = on_error(
                    f"gibbous extender internal error: {quoted(str(error))}", pod, nodes, names
                )
            latency.observe(time.perf_counter() - started)
            return Response(orjson.dumps(reply), media_type=JSON)

        return handle

    def filter_error(message: str, *_: object) -> dict[str, Any]:
        return {
            "Nodes": None,
            "NodeNames": None,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": {},
            "Error": message,
        }

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if cluster.ready():
            return PlainTextResponse("ok")
        return PlainTextResponse("node cache not synced yet", status_code=503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/filter", endpoint("filter", filter_reply, filter_error), methods=["POST"]),
            Route(
                "/prioritize",
                endpoint("prioritize", prioritize_reply, prioritize_error),
                methods=["POST"],
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )

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

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

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
from starlette.types import ASGIApp, Receive, Scope, Send

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
T = TypeVar("T")

JSON = "application/json"

# Limits (docs/decisions.md, "Hostile callers, second pass"). kube-scheduler calls the
# extender from its scheduling cycle, one pod at a time; more than two large requests at
# once come from someone else (issue #32: four callers posting 19k-node lists held the
# event loop for seconds, eight took 1.2 GB).
MAX_BODY_BYTES = 64 * 1024 * 1024  # a full NodeList of 5,000 nodes is tens of MB
INLINE_BODY_BYTES = 64 * 1024  # decided on the event loop: a few hundred names, or tens of nodes
MAX_LARGE_REQUESTS = 2  # larger ones (and chunked) are decided on this many threads
# Views of sent nodes are kept for the next request only when their request was at most
# this large: Python's objects for a NodeList weigh about ten times its JSON. Deployments
# use nodeCacheCapable (names, not nodes), which this does not concern.
SENT_VIEWS_BODY_BYTES = 4 * 1024 * 1024
# A name the scheduler sends that the node cache does not hold: a node added a moment ago
# (the scheduler retries), or a caller probing names. One message for all, and no detail.
UNKNOWN_NODE = "gibbous: node not known to the extender yet"


@dataclass(frozen=True)
class ExtenderLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    inline_body_bytes: int = INLINE_BODY_BYTES
    large_requests: int = MAX_LARGE_REQUESTS
    sent_views_body_bytes: int = SENT_VIEWS_BODY_BYTES


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


@dataclass(frozen=True)
class ExtenderArgs:
    """ExtenderArgs as decoded, and the size of the body they came in."""

    pod: dict[str, Any]
    nodes: list[dict[str, Any]] | None
    names: list[str] | None
    size: int

    @classmethod
    def decode(cls, body: bytes) -> ExtenderArgs:
        return cls(*decode_args(body), size=len(body))

    def order(self) -> list[str]:
        """The node names, in the order they were sent."""
        if self.nodes is not None:
            return [n["metadata"]["name"] for n in self.nodes]
        return list(self.names or [])


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
    taint, is a different node), and only the last request's views are kept, and only when
    `keep` (its body was at most SENT_VIEWS_BODY_BYTES), so what stays after a request is
    bounded, whatever the number or size of requests. Requests on several threads each
    replace `previous` whole."""

    def __init__(self, time_slices: int) -> None:
        self.builder = ViewCache(time_slices)
        self.previous: dict[str, tuple[dict[str, Any], NodeView]] = {}

    def views(self, nodes: list[dict[str, Any]], *, keep: bool = True) -> list[NodeView]:
        current: dict[str, tuple[dict[str, Any], NodeView]] = {}
        out = []
        for node in nodes:
            name = node["metadata"]["name"]
            kept = self.previous.get(name)
            view = kept[1] if kept is not None and kept[0] == node else self.builder.build(node)
            current[name] = (node, view)
            out.append(view)
        self.previous = current if keep else {}
        return out


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), which hands freed heap pages back to the kernel, or None
    where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Free what the last large requests left: a full collection (their node lists hold
    reference cycles through the parsed views) and, on glibc, the heap pages the freed
    objects sat in. Measured by `bench.hostile`: 115-200 MB stayed after a node-list
    flood without this, against a chart limit of 1 GiB."""
    gc.collect()
    if _TRIM is not None:
        _TRIM()


class LargeRequests:
    """Where large requests are decided: a few worker threads, so the event loop goes on
    answering health probes and small requests meanwhile; a large request that finds
    every thread taken is refused at once (503) before its body is read, so neither memory
    nor waiting grows with the number of callers. When the last one ends and none follows
    within `idle_s`, their memory is released (once per burst, not per request)."""

    def __init__(self, workers: int, idle_s: float = 1.0) -> None:
        self.workers = workers
        self.idle_s = idle_s
        self.in_flight = 0  # changed on the event loop only
        self.bursts = 0  # ended bursts: a release is for the latest only
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extender-large")

    def take(self) -> bool:
        if self.in_flight >= self.workers:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.bursts += 1
            asyncio.get_running_loop().call_later(self.idle_s, self._release_if_idle, self.bursts)

    def _release_if_idle(self, burst: int) -> None:
        if self.in_flight == 0 and burst == self.bursts:
            self.pool.submit(release_memory)

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, work)


def is_large(scope: Scope, inline_limit: int) -> bool:
    """Whether a request's body is past `inline_limit` or of unknown length (chunked)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return not value.isdigit() or int(value) > inline_limit
        if name == b"transfer-encoding":
            return True
    return False


Reply = tuple[int, bytes, str]


def endpoint(
    verb: str,
    decide: Callable[[ExtenderArgs], Any],
    on_error: Callable[[str, ExtenderArgs], Any],
    *,
    metrics: ExtenderMetrics,
    limits: ExtenderLimits,
    large: LargeRequests,
) -> Callable[[Request], Any]:
    """The handler of one verb: `decide` answers, `on_error` answers what it cannot."""
    counted = {
        o: metrics.requests.labels(verb, o)
        for o in ("ok", "bad_request", "unreadable_pod", "internal_error", "too_large", "busy")
    }
    latency = metrics.latency.labels(verb)

    def answer(body: bytes) -> Reply:
        """Decode, decide, encode: on the event loop for small bodies, else on a thread."""
        try:
            args = ExtenderArgs.decode(body)
        except BadArgs as error:
            counted["bad_request"].inc()
            return 400, f"bad ExtenderArgs: {error}".encode(), TEXT
        try:
            reply = decide(args)
            counted["ok"].inc()
        except GibbousError as error:
            # The pod's own content (a request or annotation Gibbous cannot read): the
            # scheduler shows this message in the pod's events, worded for its author.
            counted["unreadable_pod"].inc()
            reply = on_error(f"gibbous: cannot read the pod: {error}", args)
        except Exception as error:
            log.exception("internal error in %s", verb)
            counted["internal_error"].inc()
            reply = on_error(f"gibbous extender internal error: {quoted(str(error))}", args)
        return 200, orjson.dumps(reply), JSON

    async def handle(request: Request) -> Response:
        started = time.perf_counter()
        if not is_large(request.scope, limits.inline_body_bytes):
            body = await read_body(request.scope, request.receive, limits.inline_body_bytes)
            status, payload, media = answer(body) if body is not None else TOO_LARGE
        elif not large.take():
            counted["busy"].inc()
            return PlainTextResponse(
                f"extender busy: {large.workers} large requests in flight; try again",
                status_code=503,
                headers={"retry-after": "1"},
            )
        else:
            try:
                body = await read_body(request.scope, request.receive, limits.max_body_bytes)
                status, payload, media = (
                    await large.run(functools.partial(answer, body))
                    if body is not None
                    else TOO_LARGE
                )
            finally:
                large.release()
        if status == 413:
            counted["too_large"].inc()
            payload = f"request body larger than {limits.max_body_bytes} bytes".encode()
        latency.observe(time.perf_counter() - started)
        return Response(payload, status_code=status, media_type=media)

    return handle


def create_app(
    config: Config,
    cluster: ClusterView,
    metrics: ExtenderMetrics | None = None,
    limits: ExtenderLimits | None = None,
) -> Starlette:
    metrics = metrics or ExtenderMetrics()
    limits = limits or ExtenderLimits()
    sent_views = SentNodeViews(config.nvidia_gpu_time_slices)
    large = LargeRequests(limits.large_requests)
    Gauge(
        "gibbous_extender_unreadable_node_reports",
        "Times a node's problems changed to ones the extender could read only in part (a "
        "label or annotation that does not parse was left out)",
        registry=metrics.registry,
    ).set_function(lambda: float(getattr(cluster, "unreadable", 0)))
    Gauge(
        "gibbous_extender_large_requests_in_flight",
        "Requests with large bodies being read or decided",
        registry=metrics.registry,
    ).set_function(lambda: float(large.in_flight))
    informers = getattr(cluster, "informers", None)
    if informers:
        register_cache_metrics(metrics.registry, "gibbous_extender", informers)

    def views(args: ExtenderArgs) -> tuple[list[NodeView], list[str]]:
        """Node views to judge, plus names the cache does not hold (not judged)."""
        if args.nodes is not None:
            keep = args.size <= limits.sent_views_body_bytes
            return sent_views.views(args.nodes, keep=keep), []
        return cluster.views_for(args.names or [])

    def filter_reply(args: ExtenderArgs) -> dict[str, Any]:
        nodes, names = args.nodes, args.names
        if not is_managed_pod(args.pod, config):
            return {
                "Nodes": {"metadata": {}, "items": nodes} if nodes is not None else None,
                "NodeNames": names,
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": {},
                "Error": "",
            }
        facts = pod_facts(args.pod, config)
        judged, unknown = views(args)
        # Permanent rejections go in both maps: FailedAndUnresolvableNodes takes precedence
        # where the scheduler knows it (>= 1.21); older schedulers only read FailedNodes.
        passed, failed, unresolvable = judge_nodes(
            facts,
            judged,
            node_reuse=config.bin_select_node_reuse,
            reserved_for_pending=cluster.is_pending,
        )
        # Not permanent: a node the watch has not delivered yet passes on the next try.
        failed.update(dict.fromkeys(unknown, UNKNOWN_NODE))
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

    def prioritize_reply(args: ExtenderArgs) -> list[dict[str, Any]]:
        order = args.order()
        if not is_managed_pod(args.pod, config):
            return [{"Host": name, "Score": 0} for name in order]
        facts = pod_facts(args.pod, config)
        judged, _ = views(args)
        scores = dict(score_nodes(facts, judged, cluster.used(), config))
        return [{"Host": name, "Score": scores.get(name, 0)} for name in order]

    def prioritize_error(_: str, args: ExtenderArgs) -> list[dict[str, Any]]:
        """Every node scored 0: a valid HostPriorityList that changes no ranking."""
        return [{"Host": name, "Score": 0} for name in args.order()]

    def filter_error(message: str, _: ExtenderArgs) -> dict[str, Any]:
        return {
            "Nodes": None,
            "NodeNames": None,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": {},
            "Error": message,
        }

    def handler(
        verb: str,
        decide: Callable[[ExtenderArgs], Any],
        on_error: Callable[[str, ExtenderArgs], Any],
    ) -> Callable[[Request], Any]:
        return endpoint(verb, decide, on_error, metrics=metrics, limits=limits, large=large)

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
            Route(
                "/filter",
                handler("filter", filter_reply, filter_error),
                methods=["POST"],
            ),
            Route(
                "/prioritize",
                handler("prioritize", prioritize_reply, prioritize_error),
                methods=["POST"],
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


TEXT = "text/plain; charset=utf-8"
TOO_LARGE: Reply = (413, b"", TEXT)


PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def probe_app(app: ASGIApp) -> ASGIApp:
    """`app`'s health and metrics endpoints only, for a plain-HTTP port beside a mutual-TLS
    one: the kubelet's probes and Prometheus carry no client certificate, and the filter
    and prioritize endpoints must stay behind it."""
    not_found = PlainTextResponse("not found", status_code=404)

    async def probes(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in PROBE_PATHS:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await not_found(scope, receive, send)

    return probes

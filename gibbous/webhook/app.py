"""The webhook as an ASGI app: POST /mutate, POST /validate, GET /healthz, /readyz, /metrics.

Admission decisions come from the pure core (`plan_mutation`, `validate_pod`);
this module only decodes, encodes and counts. An internal error never blocks a
pod: the request is allowed unchanged with a warning, a log line and a metric.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gibbous.bytememo import ByteBudgetMemo
from gibbous.core.admission.mutation import ServerFeatures, plan_mutation
from gibbous.core.admission.validation import denial_message, validate_pod, validate_update
from gibbous.core.settings.config import Config
from gibbous.serving import read_body
from gibbous.webhook.metrics import WebhookMetrics
from gibbous.webhook.wire import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    allow,
    decode_review,
    deny,
    encode_patch,
    encode_review,
    warnings_for,
)

log = logging.getLogger("gibbous.webhook")

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's own request limit is 3 MiB
JSON = "application/json"


# Decisions memoised per (pod shape, namespace, operation): the pods of one workload
# share a shape, so a rollout of a thousand replicas is decided once. Each of the six
# memos (mutate, validate, their opted-in twins, and the two unrouted planners) holds at
# most MEMO_BUDGET_BYTES of keys and answers together; an entry weighing more than
# MEMO_ENTRY_BYTES is decided afresh every time. The namespace is the caller's text, not
# the shape's, so it is weighed too (issue #32: 1 MiB namespaces grew a count-bounded
# memo by a GiB). Typical entries weigh 1-3 KiB: a budget of 4 MiB keeps over a thousand
# workloads, 24 MiB in all, well inside the Deployment's 256 MiB limit.
MEMO_BUDGET_BYTES = 4 * 1024 * 1024
MEMO_ENTRY_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class Planned:
    patch: str | None
    warnings: tuple[str, ...]
    operations: int


T = TypeVar("T")
MemoKey = tuple[bytes, str, str]


def _weight(key: MemoKey, value: object) -> int:
    """Bytes a memo entry holds: its key's and its answer's texts as Python stores them."""
    held = sum(sys.getsizeof(part) for part in key)
    if isinstance(value, Planned):
        held += sys.getsizeof(value.patch) + sum(sys.getsizeof(w) for w in value.warnings)
    else:
        held += sys.getsizeof(value)
    return held


def _memoised(
    decide: Callable[[dict[str, Any], str, str], T],
) -> Callable[[AdmissionRequest], T]:
    """`decide(pod, namespace, operation)` for a request with an object, once per shape."""
    memo: ByteBudgetMemo[MemoKey, T] = ByteBudgetMemo(
        budget=MEMO_BUDGET_BYTES, entry_limit=MEMO_ENTRY_BYTES, weigh=_weight
    )

    def decide_request(review: AdmissionRequest) -> T:
        shape = review.shape
        if shape is not None and len(shape) <= MEMO_ENTRY_BYTES:
            return memo.get_or_compute(
                (shape, review.namespace, review.operation),
                lambda: decide(orjson.loads(shape), review.namespace, review.operation),
            )
        pod = review.pod()
        assert pod is not None  # callers check review.has_object
        return decide(pod, review.namespace, review.operation)

    return decide_request


def create_app(
    config: Config,
    features: ServerFeatures | None = None,
    metrics: WebhookMetrics | None = None,
    scheduler_alive: Callable[[], bool] | None = None,
) -> AdmissionApp:
    """`scheduler_alive` says whether pods may be sent to `schedulerName`'s scheduler (its
    Lease is renewed); while it says no, `schedulerName` is left unset, so the default
    scheduler takes new pods. None: always routed."""
    features = features or ServerFeatures()
    metrics = metrics or WebhookMetrics()
    routed = scheduler_alive or (lambda: True)
    Gauge(
        "gibbous_webhook_scheduler_routed",
        "1 while new managed pods are sent to the Gibbous scheduler (its Lease is renewed)",
        registry=metrics.registry,
    ).set_function(lambda: 1.0 if routed() else 0.0)

    # The *-opted-in paths are called by webhook entries whose namespaceSelector
    # matched an opted-in namespace (a webhook cannot read namespace labels itself).
    opted_in = replace(config, managed_namespaces=("*",))

    def planner(cfg: Config) -> Callable[[AdmissionRequest], Planned]:
        def plan(pod: dict[str, Any], namespace: str, operation: str) -> Planned:
            mutation = plan_mutation(
                pod, namespace=namespace, operation=operation, config=cfg, features=features
            )
            return Planned(
                encode_patch(mutation.operations),
                warnings_for(mutation.warnings),
                len(mutation.operations),
            )

        return _memoised(plan)

    def validator(cfg: Config) -> Callable[[AdmissionRequest], str | None]:
        def denial(pod: dict[str, Any], namespace: str, operation: str) -> str | None:
            problems = validate_pod(pod, namespace=namespace, config=cfg)
            return denial_message(problems) if problems else None

        return _memoised(denial)

    def mutator(cfg: Config) -> Callable[[AdmissionRequest], AdmissionResponse]:
        planned = planner(cfg)
        # Its own memo: the same pod shape gets another answer while the scheduler is down.
        unrouted = planner(replace(cfg, scheduler_name="")) if cfg.scheduler_name else planned

        def mutate(review: AdmissionRequest) -> AdmissionResponse:
            if not review.is_pod or not review.has_object:
                return allow(review.uid)
            plan = planned(review) if routed() else unrouted(review)
            metrics.patches.inc(plan.operations)
            return allow(review.uid, plan.patch, plan.warnings)

        return mutate

    def checker(cfg: Config) -> Callable[[AdmissionRequest], AdmissionResponse]:
        denial = validator(cfg)

        def update_denial(review: AdmissionRequest) -> str | None:
            pod = review.pod()
            assert pod is not None and review.old_annotations is not None
            problems = validate_update(
                pod, review.old_annotations, namespace=review.namespace, config=cfg
            )
            return denial_message(problems) if problems else None

        def validate(review: AdmissionRequest) -> AdmissionResponse:
            if (
                not review.is_pod
                or not review.has_object
                or review.operation not in ("CREATE", "UPDATE")
            ):
                return allow(review.uid)
            message = (
                update_denial(review)
                if review.operation == "UPDATE" and review.old_annotations is not None
                else denial(review)
            )
            if message is None:
                return allow(review.uid)
            metrics.denials.inc()
            return deny(review.uid, message)

        return validate

    def endpoint(name: str, decide: Callable[[AdmissionRequest], AdmissionResponse]) -> Handler:
        """body -> (HTTP status, body, content type); no Request/Response objects on this path."""
        # Label children bound once: labels() costs more than the increment itself.
        counted = {
            outcome: metrics.requests.labels(name, outcome)
            for outcome in ("allowed", "denied", "internal_error", "bad_request", "too_large")
        }
        latency = metrics.latency.labels(name)
        internal_errors = metrics.internal_errors.labels(name)

        def handle(body: bytes | None) -> tuple[int, bytes, bytes]:
            started = time.perf_counter()
            if body is None:
                counted["too_large"].inc()
                return 413, f"request body larger than {MAX_BODY_BYTES} bytes".encode(), TEXT
            try:
                review = decode_review(body)
            except BadReview as error:
                counted["bad_request"].inc()
                return 400, f"bad AdmissionReview: {error}".encode(), TEXT
            try:
                response = decide(review)
                outcome = "allowed" if response["allowed"] else "denied"
            except Exception:
                # Never let our bug take a user's pod down: allow, unchanged.
                log.exception(
                    "internal error on %s for request %s; allowing unchanged", name, review.uid
                )
                internal_errors.inc()
                response = allow(
                    review.uid,
                    warnings=(f"gibbous {name} webhook: internal error; pod admitted unchanged",),
                )
                outcome = "internal_error"
            counted[outcome].inc()
            latency.observe(time.perf_counter() - started)
            return 200, encode_review(response), JSON_BYTES

        return handle

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    others = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )
    return AdmissionApp(
        {
            "/mutate": endpoint("mutate", mutator(config)),
            "/validate": endpoint("validate", checker(config)),
            "/mutate-opted-in": endpoint("mutate", mutator(opted_in)),
            "/validate-opted-in": endpoint("validate", checker(opted_in)),
        },
        others,
    )


Handler = Callable[[bytes | None], tuple[int, bytes, bytes]]
TEXT = b"text/plain; charset=utf-8"
JSON_BYTES = b"application/json"


class AdmissionApp:
    """Plain ASGI for the admission paths (the hot path: one body in, one body out), and
    Starlette for everything else. `routes` lists every path served, for tests and docs."""

    def __init__(self, handlers: dict[str, Handler], fallback: Starlette) -> None:
        self.handlers = handlers
        self.fallback = fallback
        self.routes = [
            *(Route(path, _post_only, methods=["POST"]) for path in handlers),
            *fallback.routes,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None:
            await self.fallback(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _reply(send, 405, b"admission endpoints take POST", TEXT, ((b"allow", b"POST"),))
            return
        status, body, content_type = handler(await read_body(scope, receive, MAX_BODY_BYTES))
        await _reply(send, status, body, content_type)


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _post_only(_: Request) -> Response:
    return PlainTextResponse("admission endpoints take POST", status_code=405)

"""The webhook as an ASGI app: POST /mutate, POST /validate, GET /healthz, /readyz, /metrics.

Admission decisions come from the pure core (`plan_mutation`, `validate_pod`);
this module only decodes, encodes and counts. An internal error never blocks a
pod: the request is allowed unchanged with a warning, a log line and a metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gibbous.core.config import Config
from gibbous.core.mutation import ServerFeatures, plan_mutation
from gibbous.core.validation import validate_pod
from gibbous.webhook.metrics import WebhookMetrics
from gibbous.webhook.wire import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    allow,
    decode_review,
    deny,
    encode_review,
)

log = logging.getLogger("gibbous.webhook")

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's own request limit is 3 MiB
JSON = "application/json"


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        if int(declared) > MAX_BODY_BYTES:
            raise BodyTooLarge
        # The HTTP parser enforces Content-Length framing, so the whole body is bounded.
        return await request.body()
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _namespace(review: AdmissionRequest) -> str:
    namespace = review.get("namespace")
    if namespace:
        return namespace
    obj = review.get("object") or {}
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str((meta or {}).get("namespace") or "default")


def _is_pod(review: AdmissionRequest) -> bool:
    kind = review.get("kind")
    return isinstance(kind, dict) and kind.get("kind") == "Pod" and not review.get("subResource")


def create_app(
    config: Config, features: ServerFeatures | None = None, metrics: WebhookMetrics | None = None
) -> Starlette:
    features = features or ServerFeatures()
    metrics = metrics or WebhookMetrics()

    # The *-opted-in paths are called by webhook entries whose namespaceSelector
    # matched an opted-in namespace (a webhook cannot read namespace labels itself).
    opted_in = replace(config, managed_namespaces=("*",))

    def mutate(review: AdmissionRequest, cfg: Config = config) -> AdmissionResponse:
        obj = review.get("object")
        if not _is_pod(review) or not isinstance(obj, dict):
            return allow(review["uid"])
        mutation = plan_mutation(
            obj,
            namespace=_namespace(review),
            operation=review["operation"],
            config=cfg,
            features=features,
        )
        metrics.patches.inc(len(mutation.operations))
        return allow(review["uid"], mutation.operations, mutation.warnings)

    def validate(review: AdmissionRequest, cfg: Config = config) -> AdmissionResponse:
        obj = review.get("object")
        if (
            not _is_pod(review)
            or not isinstance(obj, dict)
            or review["operation"] not in ("CREATE", "UPDATE")
        ):
            return allow(review["uid"])
        problems = validate_pod(obj, namespace=_namespace(review), config=cfg)
        if not problems:
            return allow(review["uid"])
        metrics.denials.inc()
        return deny(review["uid"], "gibbous: " + "; ".join(problems))

    def endpoint(
        name: str, decide: Callable[[AdmissionRequest], AdmissionResponse]
    ) -> Callable[[Request], object]:
        # Label children bound once: labels() costs more than the increment itself.
        counted = {
            outcome: metrics.requests.labels(name, outcome)
            for outcome in ("allowed", "denied", "internal_error", "bad_request", "too_large")
        }
        latency = metrics.latency.labels(name)
        internal_errors = metrics.internal_errors.labels(name)

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                body = await _read_body(request)
            except BodyTooLarge:
                counted["too_large"].inc()
                return PlainTextResponse(
                    f"request body larger than {MAX_BODY_BYTES} bytes", status_code=413
                )
            try:
                review = decode_review(body)
            except BadReview as error:
                counted["bad_request"].inc()
                return PlainTextResponse(f"bad AdmissionReview: {error}", status_code=400)
            try:
                response = decide(review)
                outcome = "allowed" if response["allowed"] else "denied"
            except Exception:
                # Never let our bug take a user's pod down: allow, unchanged.
                log.exception(
                    "internal error on %s for request %s; allowing unchanged", name, review["uid"]
                )
                internal_errors.inc()
                response = allow(
                    review["uid"],
                    warnings=[f"gibbous {name} webhook: internal error; pod admitted unchanged"],
                )
                outcome = "internal_error"
            counted[outcome].inc()
            latency.observe(time.perf_counter() - started)
            return Response(encode_review(response), media_type=JSON)

        return handle

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/mutate", endpoint("mutate", mutate), methods=["POST"]),
            Route("/validate", endpoint("validate", validate), methods=["POST"]),
            Route(
                "/mutate-opted-in",
                endpoint("mutate", lambda r: mutate(r, opted_in)),
                methods=["POST"],
            ),
            Route(
                "/validate-opted-in",
                endpoint("validate", lambda r: validate(r, opted_in)),
                methods=["POST"],
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )

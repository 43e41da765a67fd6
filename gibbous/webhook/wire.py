"""AdmissionReview v1 on the wire (k8s.io/api/admission/v1).

kube-apiserver checks the reply strictly: `apiVersion: admission.k8s.io/v1`,
`kind: AdmissionReview`, `response.uid` equal to the request's, and on a
mutating reply `patch` (base64 of a JSON Patch) only together with
`patchType: JSONPatch`. A validating reply carries neither.

Decoding is typed (msgspec) and keeps only the pod fields that admission decisions read
(`ADMISSION_FIELDS`). A Deployment's pod arrives with `managedFields`, `userInfo`,
volumes, env and probes that the webhook never looks at; building Python objects for
them was the largest cost of a request. Those fields, re-encoded, are the pod's *shape*:
the pods of one workload share it (one template), so the app decides once per shape.
Bodies the typed decoder refuses (never sent by kube-apiserver: a non-object `metadata`,
say) take the generic path, which decodes everything and words the error.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import msgspec
import orjson
from msgspec import UNSET, UnsetType

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")

# Every pod field the webhook's decisions (core.mutation.plan_mutation,
# core.validation.validate_pod) read. A test checks that deciding on the reduced pod
# equals deciding on the whole one; a field newly read there must be added here.
ADMISSION_FIELDS = (
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "spec.containers[].name",
    "spec.containers[].resources",
    "spec.initContainers[].name",
    "spec.initContainers[].resources",
    "spec.initContainers[].restartPolicy",
    "spec.overhead",
    "spec.resources",
    "spec.tolerations",
    "spec.nodeSelector",
    "spec.affinity",
    "spec.schedulingGates",
    "spec.schedulerName",
)


class _Container(msgspec.Struct, gc=False):
    name: Any = UNSET
    resources: Any = UNSET


class _InitContainer(_Container, gc=False):
    restartPolicy: Any = UNSET  # "Always": a sidecar, counted with the app containers


class _Spec(msgspec.Struct, gc=False):
    containers: list[_Container] | UnsetType | None = UNSET
    initContainers: list[_InitContainer] | UnsetType | None = UNSET
    overhead: Any = UNSET
    resources: Any = UNSET  # pod-level resources (1.34+)
    tolerations: Any = UNSET
    nodeSelector: Any = UNSET
    affinity: Any = UNSET
    schedulingGates: Any = UNSET
    schedulerName: Any = UNSET


class _Metadata(msgspec.Struct, gc=False):
    namespace: Any = UNSET
    labels: Any = UNSET
    annotations: Any = UNSET


class _Pod(msgspec.Struct, gc=False):
    metadata: _Metadata | UnsetType | None = UNSET
    spec: _Spec | UnsetType | None = UNSET


class _OldMetadata(msgspec.Struct, gc=False):
    annotations: Any = UNSET


class _OldPod(msgspec.Struct, gc=False):
    """Of the object before an UPDATE, only what validation compares: its annotations."""

    metadata: _OldMetadata | UnsetType | None = UNSET


class _Request(msgspec.Struct, gc=False):
    uid: Any = UNSET
    kind: Any = UNSET
    subResource: Any = UNSET
    namespace: Any = UNSET
    operation: Any = UNSET
    object: _Pod | UnsetType | None = UNSET
    oldObject: _OldPod | UnsetType | None = UNSET


class _Review(msgspec.Struct, gc=False):
    apiVersion: Any = UNSET
    kind: Any = UNSET
    request: _Request | UnsetType | None = UNSET


_DECODER = msgspec.json.Decoder(_Review)
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """What the webhook uses of `request`. The object arrives either reduced to its
    ADMISSION_FIELDS (typed path: `shape` is their JSON text, equal for pods that get
    equal decisions) or whole (`document`, generic path); neither when there is none."""

    uid: str
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    is_pod: bool  # a Pod, not one of its subresources
    namespace: str  # request.namespace, else the object's, else "default"
    shape: bytes | None = None
    document: dict[str, Any] | None = None
    # On UPDATE: the annotations before it ({} when it had none); None when not an UPDATE.
    old_annotations: dict[str, Any] | None = None

    @property
    def has_object(self) -> bool:
        return self.shape is not None or self.document is not None

    def pod(self) -> dict[str, Any] | None:
        """The object as plain JSON values (reduced to its ADMISSION_FIELDS on the typed path)."""
        if self.shape is not None:
            reduced: dict[str, Any] = orjson.loads(self.shape)
            return reduced
        return self.document


class Status(TypedDict):
    code: int
    message: str
    reason: NotRequired[str]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    patch: NotRequired[str]
    patchType: NotRequired[Literal["JSONPatch"]]
    warnings: NotRequired[list[str]]


class BadReview(ValueError):
    """The body is not an admission.k8s.io/v1 AdmissionReview request."""


def _resolve_namespace(request_namespace: object, object_namespace: object) -> str:
    if request_namespace:
        return str(request_namespace)
    return str(object_namespace or "default")


def _is_pod_kind(kind: object, sub_resource: object) -> bool:
    return isinstance(kind, dict) and kind.get("kind") == "Pod" and not sub_resource


def decode_review(body: bytes) -> AdmissionRequest:
    """The request of an admission.k8s.io/v1 AdmissionReview; BadReview otherwise."""
    try:
        review = _DECODER.decode(body)
    except msgspec.ValidationError:
        return _decode_generic(body)
    except msgspec.DecodeError as error:
        raise BadReview(f"body is not JSON: {error}") from None
    except RecursionError:
        raise BadReview("body is nested too deeply to be an AdmissionReview") from None
    request = review.request
    if (
        review.apiVersion != API_VERSION
        or review.kind != KIND
        or not isinstance(request, _Request)
        or not isinstance(request.uid, str)
        or not request.uid
        or request.operation not in _OPERATIONS
        or (request.namespace is not UNSET and not isinstance(request.namespace, str | None))
    ):
        return _decode_generic(body)  # for its error message
    obj = request.object
    if not isinstance(obj, _Pod):
        return AdmissionRequest(
            request.uid,
            request.operation,
            _is_pod_kind(request.kind, request.subResource),
            _resolve_namespace(request.namespace, None),
        )
    meta = obj.metadata
    old = request.oldObject
    old_annotations = None
    if request.operation == "UPDATE":
        old_meta = old.metadata if isinstance(old, _OldPod) else None
        raw = old_meta.annotations if isinstance(old_meta, _OldMetadata) else None
        old_annotations = dict(raw) if isinstance(raw, dict) else {}
    return AdmissionRequest(
        request.uid,
        request.operation,
        _is_pod_kind(request.kind, request.subResource),
        _resolve_namespace(
            request.namespace, meta.namespace if isinstance(meta, _Metadata) else None
        ),
        shape=_ENCODER.encode(obj),
        old_annotations=old_annotations,
    )


def _decode_generic(body: bytes) -> AdmissionRequest:
    """Every field decoded; the reference for what `decode_review` accepts and refuses."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadReview(f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadReview("body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise BadReview(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{document.get('apiVersion')!r} and {document.get('kind')!r}"
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing or not an object")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("request.uid is missing")
    if request.get("operation") not in _OPERATIONS:
        raise BadReview(
            f"request.operation {request.get('operation')!r} is not CREATE, UPDATE, DELETE or CONNECT"
        )
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise BadReview("request.object is not an object")
    if request.get("namespace") is not None and not isinstance(request.get("namespace"), str):
        raise BadReview("request.namespace is not a string")
    meta = obj.get("metadata") if obj else None
    old_annotations = None
    if request["operation"] == "UPDATE":
        old = request.get("oldObject")
        old_meta = old.get("metadata") if isinstance(old, dict) else None
        raw = old_meta.get("annotations") if isinstance(old_meta, dict) else None
        old_annotations = dict(raw) if isinstance(raw, dict) else {}
    return AdmissionRequest(
        request["uid"],
        request["operation"],
        _is_pod_kind(request.get("kind"), request.get("subResource")),
        _resolve_namespace(
            request.get("namespace"), meta.get("namespace") if isinstance(meta, dict) else None
        ),
        document=obj,
        old_annotations=old_annotations,
    )


# Warnings over 256 characters may be truncated by the API server.
_WARNING_LIMIT = 256


def encode_patch(operations: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str | None:
    """The `patch` field for `operations` (base64 of the JSON Patch), None for none."""
    if not operations:
        return None
    return base64.b64encode(orjson.dumps(list(operations))).decode()


def warnings_for(warnings: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(w[:_WARNING_LIMIT] for w in warnings)


def allow(uid: str, patch: str | None = None, warnings: tuple[str, ...] = ()) -> AdmissionResponse:
    """An allowing reply; `patch` from `encode_patch`, `warnings` from `warnings_for`."""
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = patch
    if warnings:
        response["warnings"] = list(warnings)
    return response


def deny(uid: str, message: str, code: int = 400) -> AdmissionResponse:
    return {"uid": uid, "allowed": False, "status": {"code": code, "message": message}}


def encode_review(response: AdmissionResponse) -> bytes:
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})

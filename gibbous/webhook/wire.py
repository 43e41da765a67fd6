"""AdmissionReview v1 on the wire (k8s.io/api/admission/v1).

kube-apiserver checks the reply strictly: `apiVersion: admission.k8s.io/v1`,
`kind: AdmissionReview`, `response.uid` equal to the request's, and on a
mutating reply `patch` (base64 of a JSON Patch) only together with
`patchType: JSONPatch`. A validating reply carries neither.
"""

from __future__ import annotations

import base64
from typing import Any, Literal, NotRequired, TypedDict

import orjson

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


class AdmissionRequest(TypedDict):
    uid: str
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    kind: NotRequired[dict[str, str]]
    subResource: NotRequired[str]
    namespace: NotRequired[str]
    name: NotRequired[str]
    object: NotRequired[dict[str, Any] | None]
    oldObject: NotRequired[dict[str, Any] | None]
    dryRun: NotRequired[bool]


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


def decode_review(body: bytes) -> AdmissionRequest:
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
    if request.get("operation") not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise BadReview(
            f"request.operation {request.get('operation')!r} is not CREATE, UPDATE, DELETE or CONNECT"
        )
    for field in ("object", "oldObject"):
        if request.get(field) is not None and not isinstance(request.get(field), dict):
            raise BadReview(f"request.{field} is not an object")
    if request.get("namespace") is not None and not isinstance(request.get("namespace"), str):
        raise BadReview("request.namespace is not a string")
    return request  # type: ignore[return-value]


# Warnings over 256 characters may be truncated by the API server.
_WARNING_LIMIT = 256


def allow(
    uid: str,
    operations: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    warnings: list[str] | tuple[str, ...] = (),
) -> AdmissionResponse:
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if operations:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(list(operations))).decode()
    if warnings:
        response["warnings"] = [w[:_WARNING_LIMIT] for w in warnings]
    return response


def deny(uid: str, message: str, code: int = 400) -> AdmissionResponse:
    return {"uid": uid, "allowed": False, "status": {"code": code, "message": message}}


def encode_review(response: AdmissionResponse) -> bytes:
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})

"""What EC2 and EKS do at their front door that moto does not, as a WSGI layer in front of
moto's server (docs/clouds/aws.md cites each behaviour):

* Request throttling, per API action, with EC2's token buckets: a non-mutating action
  (`Describe*`) holds 100 tokens refilled at 20 a second, a mutating one 200 refilled at 5;
  an empty bucket answers 503 `RequestLimitExceeded`. `throttle_scale` scales both (tests
  use a small one to throttle a few dozen calls, as a busy account is throttled).
* `RunInstances`' `ClientToken`: at most 64 ASCII characters; a repeated token with the same
  parameters answers the first launch again, with other parameters
  `IdempotentParameterMismatch`.
* A spot launch in an account without the `AWSServiceRoleForEC2Spot` service-linked role
  fails with `AuthFailure.ServiceLinkedRoleCreationNotPermitted` (the emulated caller never
  holds `iam:CreateServiceLinkedRole`).
* The Price List API (`pricing:GetProducts`, JSON 1.1 with `X-Amz-Target`
  `AWSPriceListService.GetProducts`), which moto lacks, answered by `pricing` (the
  emulator's `catalogapis`).
* EKS access entries (`CreateAccessEntry`, `ListAccessEntries`, `DescribeAccessEntry`,
  `DeleteAccessEntry`) and `DescribeCluster`'s `accessConfig.authenticationMode`, which
  moto lacks.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from moto.iam.models import iam_backends

from gibbous.devcluster.aws.state import ACCOUNT

# (bucket size, refill per second) from EC2's "Request throttling for the Amazon EC2 API".
NON_MUTATING = (100.0, 20.0)
MUTATING = (200.0, 5.0)
CLIENT_TOKEN_MAX = 64
SPOT_ROLE = "AWSServiceRoleForEC2Spot"
ACCESS_ENTRY_TYPES = frozenset(
    {"STANDARD", "FARGATE_LINUX", "EC2_LINUX", "EC2_WINDOWS", "EC2", "HYBRID_LINUX"}
)
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_ENTRIES = re.compile(r"^/clusters/([^/]+)/access-entries(?:/(.+))?$")
_CLUSTER = re.compile(r"^/clusters/([^/]+)$")

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass
class TokenBucket:
    size: float
    rate: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class FrontDoor:
    app: App
    clock: Callable[[], float] = time.monotonic
    throttle_scale: float = 1.0  # 0 switches throttling off
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    tokens: dict[str, tuple[str, bytes, list[tuple[str, str]], bytes]] = field(
        default_factory=dict
    )  # ClientToken -> (parameters' digest, status, headers, body)
    access_entries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    authentication_modes: dict[str, str] = field(default_factory=dict)  # cluster -> mode
    throttled: dict[str, int] = field(default_factory=dict)  # action -> refusals
    # Injected: action -> [(code, message)], answered (HTTP 400) in turn before moto sees it.
    faults: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # GetProducts' request -> its reply (None: the Price List API is not served).
    pricing: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def fail_next(self, action: str, code: str, message: str) -> None:
        """The next `action` fails with EC2's error `code` (what moto never answers: a
        parameter EC2 validates and moto does not)."""
        with self.lock:
            self.faults.setdefault(action, []).append((code, message))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        found = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = found.group(1) if found else ""
        if service == "ec2":
            return self._ec2(environ, start_response, body)
        if service == "eks":
            return self._eks(environ, start_response, body)
        if service == "pricing" and self.pricing is not None:
            return self._pricing(environ, start_response, body, self.pricing)
        return self.app(environ, start_response)

    # --- Price List API ------------------------------------------------------------------

    def _pricing(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        body: bytes,
        answer: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target != "AWSPriceListService.GetProducts":
            return _json_error(start_response, "400", "UnknownOperationException", target)
        if not self._take("GetProducts"):
            return _json_error(start_response, "400", "ThrottlingException", "Rate exceeded")
        with self.lock:
            fault = self.faults["GetProducts"].pop(0) if self.faults.get("GetProducts") else None
        if fault is not None:
            return _json_error(start_response, "400", *fault)
        try:
            request = json.loads(body or b"{}")
            reply = answer(request if isinstance(request, dict) else {})
        except ValueError as error:
            code = getattr(error, "code", "InvalidParameterException")
            return _json_error(start_response, "400", code, str(error))
        return _json(start_response, "200", reply)

    # --- EC2 ------------------------------------------------------------------------

    def _ec2(
        self, environ: dict[str, Any], start_response: StartResponse, body: bytes
    ) -> Iterable[bytes]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        action = form.get("Action", "")
        if not self._take(action):
            return _ec2_error(
                start_response, "503", "RequestLimitExceeded", "Request limit exceeded."
            )
        with self.lock:
            fault = self.faults[action].pop(0) if self.faults.get(action) else None
        if fault is not None:
            return _ec2_error(start_response, "400", *fault)
        if action != "RunInstances":
            return self.app(environ, start_response)
        if form.get("InstanceMarketOptions.MarketType") == "spot" and not _spot_role():
            return _ec2_error(
                start_response,
                "403",
                "AuthFailure.ServiceLinkedRoleCreationNotPermitted",
                "The provided credentials do not have permission to create the "
                "service-linked role for EC2 Spot Instances.",
            )
        token = form.get("ClientToken", "")
        if len(token) > CLIENT_TOKEN_MAX or not token.isascii():
            return _ec2_error(
                start_response,
                "400",
                "InvalidParameterValue",
                f"Value ({token}) for parameter clientToken is invalid. "
                f"Length exceeds maximum of {CLIENT_TOKEN_MAX} ASCII characters.",
            )
        if not token:
            return self.app(environ, start_response)
        digest = hashlib.sha256(
            repr(sorted((k, v) for k, v in form.items() if k != "ClientToken")).encode()
        ).hexdigest()
        with self.lock:
            seen = self.tokens.get(token)
            if seen is not None and seen[0] != digest:
                return _ec2_error(
                    start_response,
                    "400",
                    "IdempotentParameterMismatch",
                    "The client token you have provided is associated with a resource "
                    "that is already deleted or has different parameters.",
                )
            if seen is None:
                status, headers, data = _call(self.app, environ)
                if status.startswith("2"):
                    self.tokens[token] = (digest, status.encode(), headers, data)
                start_response(status, headers)
                return [data]
        start_response(seen[1].decode(), seen[2])
        return [seen[3]]

    def _take(self, action: str) -> bool:
        if self.throttle_scale <= 0 or not action:
            return True
        size, rate = NON_MUTATING if action.startswith(("Describe", "Get")) else MUTATING
        now = self.clock()
        with self.lock:
            bucket = self.buckets.get(action)
            if bucket is None:
                scaled = max(1.0, size * self.throttle_scale)
                bucket = self.buckets[action] = TokenBucket(
                    scaled, rate * self.throttle_scale, scaled, now
                )
            if bucket.take(now):
                return True
            self.throttled[action] = self.throttled.get(action, 0) + 1
            return False

    # --- EKS ------------------------------------------------------------------------

    def _eks(
        self, environ: dict[str, Any], start_response: StartResponse, body: bytes
    ) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        entries = _ENTRIES.match(path)
        if entries:
            cluster, principal = entries.group(1), unquote(entries.group(2) or "")
            return self._access_entries(start_response, method, cluster, principal, body)
        cluster_path = _CLUSTER.match(path)
        if cluster_path and method == "GET":
            status, headers, data = _call(self.app, environ)
            if status.startswith("200"):
                reply = json.loads(data)
                mode = self.authentication_modes.get(cluster_path.group(1), "CONFIG_MAP")
                reply["cluster"]["accessConfig"] = {"authenticationMode": mode}
                data = json.dumps(reply).encode()
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(data))))
            start_response(status, headers)
            return [data]
        return self.app(environ, start_response)

    def _access_entries(
        self, start_response: StartResponse, method: str, cluster: str, principal: str, raw: bytes
    ) -> Iterable[bytes]:
        if cluster not in self.authentication_modes:
            return _eks_error(start_response, "404", "ResourceNotFoundException", cluster)
        if self.authentication_modes[cluster] == "CONFIG_MAP":
            return _eks_error(
                start_response,
                "400",
                "InvalidRequestException",
                "The cluster's authentication mode must be set to one of "
                "[API, API_AND_CONFIG_MAP] to perform this operation.",
            )
        with self.lock:
            if method == "POST" and not principal:
                request = json.loads(raw or b"{}")
                key = (cluster, str(request.get("principalArn", "")))
                kind = str(request.get("type") or "STANDARD")
                if kind not in ACCESS_ENTRY_TYPES:
                    return _eks_error(start_response, "400", "InvalidParameterException", kind)
                if key in self.access_entries:
                    return _eks_error(start_response, "409", "ResourceInUseException", key[1])
                self.access_entries[key] = created = {
                    "clusterName": cluster,
                    "principalArn": key[1],
                    "type": kind,
                    "kubernetesGroups": [] if kind != "STANDARD" else request.get("groups", []),
                    "username": request.get("username") or _username(kind, key[1]),
                    "createdAt": datetime.datetime.now(datetime.UTC).timestamp(),
                    "accessEntryArn": f"arn:aws:eks:us-west-2:{ACCOUNT}:access-entry/{cluster}",
                }
                return _json(start_response, "200", {"accessEntry": created})
            if method == "GET" and not principal:
                names = sorted(p for c, p in self.access_entries if c == cluster)
                return _json(start_response, "200", {"accessEntries": names})
            entry = self.access_entries.get((cluster, principal))
            if entry is None:
                return _eks_error(
                    start_response,
                    "404",
                    "ResourceNotFoundException",
                    f"The specified access entry resource can't be found: {principal}",
                )
            if method == "DELETE":
                del self.access_entries[(cluster, principal)]
                return _json(start_response, "200", {})
            return _json(start_response, "200", {"accessEntry": entry})


def _username(kind: str, principal: str) -> str:
    """The user name EKS gives a node role's entry (`system:node:{{EC2PrivateDNSName}}`)."""
    if kind in ("EC2_LINUX", "EC2_WINDOWS", "EC2"):
        return "system:node:{{EC2PrivateDNSName}}"
    return principal


def _spot_role() -> bool:
    roles = iam_backends[ACCOUNT]["global"].roles.values()
    return any(role.name == SPOT_ROLE for role in roles)


def _call(app: App, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    captured: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = status, list(headers)

    data = b"".join(app(environ, start))
    return captured["status"], captured["headers"], data


def _ec2_error(
    start_response: StartResponse, status: str, code: str, message: str
) -> Iterable[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>emulated</RequestID></Response>"
    ).encode()
    reasons = {"400": "Bad Request", "403": "Forbidden", "503": "Service Unavailable"}
    start_response(
        f"{status} {reasons[status]}",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _eks_error(
    start_response: StartResponse, status: str, code: str, message: str
) -> Iterable[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(
        f"{status} {code}",
        [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _json_error(
    start_response: StartResponse, status: str, code: str, message: str
) -> Iterable[bytes]:
    """An AWS JSON 1.1 error: `__type` names the error."""
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(
        f"{status} Bad Request",
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _json(start_response: StartResponse, status: str, value: Any) -> Iterable[bytes]:
    body = json.dumps(value).encode()
    start_response(
        f"{status} OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]

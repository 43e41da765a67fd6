"""An OKE emulator on loopback: the Container Engine node-pool surface (`/20180222`) and
Identity's availability domains (`/20160918`) that the oci provider uses, behaving as OCI
does.

* Every request must carry a valid OCI request signature (draft-cavage HTTP signatures,
  rsa-sha256, the headers OCI signs), checked with the caller's public key: a request the
  SDK signed wrong is a 401, as OCI refuses it.
* Bodies are checked against the SDK's models (`swagger_types` / `attribute_map`,
  discriminated subtypes included), so a misspelt field is a 400 `InvalidParameter`.
  Shapes, Flex shape configs, availability domains, subnets, images and node labels are
  checked.
* Creating, resizing and deleting answer 202 with `opc-work-request-id`; the work request
  runs `operation_s`, one at a time per pool (another meanwhile is a 409 `Conflict`), and
  ends SUCCEEDED, or FAILED with `InternalError` "Out of host capacity." in its errors
  (a capacity fault) while the nodes it could not make stay in the pool, `INACTIVE`, with
  that `nodeError`, and the pool `NEEDS_ATTENTION`, as OKE leaves them.
* Quota faults refuse a create or resize at once (400 `LimitExceeded`); throttle faults
  answer 429 `TooManyRequests`. Lists page with `opc-next-page`.
* Faults are injected with `POST /emulator/faults` (JSON list of `Fault`), or in process.

Its state (the tenancy's fixed OCIDs, node pools, nodes, work requests, faults) is
`gibbous.devcluster.oci.state`. `python -m gibbous.devcluster.oci` serves it and runs the
node agent (`gibbous.devcluster.oci.agent`); `gibbous dev-cluster up --cloud oci` uses
that.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import oci
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gibbous.catalogs import load_catalog
from gibbous.devcluster.emulation import RequestBucket, serve_json, take_fault
from gibbous.devcluster.oci.catalogapis import (
    UNSIGNED_PATHS,
    CatalogApiError,
    OciCatalogApis,
)
from gibbous.devcluster.oci.state import (
    ADS,
    CLUSTER,
    COMPARTMENT,
    POD_SUBNET,
    REGION,
    SUBNET,
    TENANCY,
    USER,
    VCN_NATIVE_PODS,
    Fault,
    OkeNode,
    OkePool,
    WorkRequest,
    managed_node_name,
)

log = logging.getLogger("gibbous.okeemulator")

MODELS = oci.container_engine.models
IDENTITY_MODELS = oci.identity.models
OUT_OF_CAPACITY = "Out of host capacity."


class OciError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass
class OkeEmulator:
    cluster_id: str = CLUSTER
    cluster_name: str = "dev-cluster"
    version: str = "v1.37.2"
    public_key: Any = None  # the caller's RSA public key; None: signatures not checked
    # A realistic duration (docs/clouds/oke.md), multiplied by `time_scale`: tests and the
    # dev cluster run the cloud faster by that documented factor.
    operation_s: float = 180.0
    time_scale: float = 1.0
    clock: Callable[[], float] = time.time
    faults: list[Fault] = field(default_factory=list)
    pools: dict[str, OkePool] = field(default_factory=dict)
    work_requests: dict[str, WorkRequest] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # The cluster's pod networking: FLANNEL_OVERLAY, or OCI_VCN_IP_NATIVE (whose pools
    # must name their pod subnets).
    cni_type: str = "FLANNEL_OVERLAY"
    # OCI throttles with 429 TooManyRequests but publishes no rate: a bucket of
    # `read_bucket` GETs refilled at `reads_per_s` (a guess, docs/clouds/oke.md); 0: none.
    read_bucket: float = 20.0
    reads_per_s: float = 10.0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.reads = RequestBucket(self.read_bucket, self.reads_per_s, self.clock)
        self.ids = itertools.count(1)
        self.shapes = {_base_shape(t.name) for t in load_catalog(None, "oci", REGION)}
        self.catalog_apis = OciCatalogApis(load_catalog(None, "oci", REGION))

    # --- images ------------------------------------------------------------------------------

    def images(self) -> list[tuple[str, str]]:
        """(name, OCID) of the OKE node images for the cluster's version, as
        GetNodePoolOptions lists them."""
        return [image for image in self.listed_images() if image[0].endswith(self._release_tag())]

    def _release_tag(self) -> str:
        return f"-OKE-{self.version.lstrip('v')}-812"

    def listed_images(self) -> list[tuple[str, str]]:
        """Every image GetNodePoolOptions lists: OKE lists images of every version it
        supports, named `Oracle-Linux-8.10[-Gen2-GPU|-aarch64]-<date>-0-OKE-<version>-<build>`
        (the image names of "OKE Worker Node Images"); the patch release ten above the
        cluster's (v1.37.2 -> 1.37.20) comes first, so a substring match takes the wrong one."""
        version = self.version.lstrip("v")
        out = []
        for release in (f"{version}0", version):
            for kind in ("", "-Gen2-GPU", "-aarch64"):
                name = f"Oracle-Linux-8.10{kind}-2026.10.31-0-OKE-{release}-812"
                tail = f"{kind.lower().replace('-', '')}{release.replace('.', '')}"
                out.append((name, f"ocid1.image.oc1.iad.oke{tail}"))
        return out

    # --- time ---------------------------------------------------------------------------------

    def advance(self) -> None:
        now = self.clock()
        with self.lock:
            for request in self.work_requests.values():
                if request.status in ("ACCEPTED", "IN_PROGRESS") and now >= request.done_at:
                    failure = request.finish()
                    request.status = "FAILED" if failure else "SUCCEEDED"
                    if failure:
                        request.errors.append(failure)
                    pool = self.pools.get(request.pool)
                    if pool is not None and pool.busy == request.id:
                        pool.busy = ""
                elif request.status == "ACCEPTED":
                    request.status = "IN_PROGRESS"
            for pool in self.pools.values():
                for node_id, node in list(pool.nodes.items()):
                    if node.gone_at is not None and now >= node.gone_at:
                        del pool.nodes[node_id]
                    elif node.state == "CREATING" and node.error is None and now >= node.ready_at:
                        node.state = "ACTIVE"

    def _fault(
        self, kinds: tuple[str, ...], shape: str, preemptible: bool, ad: str
    ) -> Fault | None:
        return take_fault(self.faults, kinds, lambda f: f.matches(shape, preemptible, ad))

    def _throttled(self) -> None:
        if self._fault(("throttle",), "", False, "") is not None:
            raise OciError(429, "TooManyRequests", "Too many requests for the user")

    def _work_request(
        self, operation: str, pool: OkePool, finish: Callable[[], tuple[str, str] | None]
    ) -> WorkRequest:
        now = self.clock()
        request = WorkRequest(
            f"ocid1.clustersworkrequest.oc1.iad.{next(self.ids):08x}",
            operation,
            pool.id,
            now + self.operation_s * self.time_scale,
            finish,
            accepted=now,
        )
        self.work_requests[request.id] = request
        pool.busy = request.id
        return request

    # --- node pools ---------------------------------------------------------------------------

    def create_node_pool(self, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = _strict("CreateNodePoolDetails", raw)
        self._throttled()
        problems = self._problems(body)
        if problems:
            raise OciError(400, "InvalidParameter", "; ".join(problems))
        placements = body["nodeConfigDetails"]["placementConfigs"]
        ad = placements[0]["availabilityDomain"]
        preemptible = bool(placements[0].get("preemptibleNodeConfig"))
        size = int(body["nodeConfigDetails"].get("size", 0))
        with self.lock:
            self.advance()
            if self._fault(("quota",), body["nodeShape"], preemptible, ad) is not None:
                raise OciError(
                    400,
                    "LimitExceeded",
                    f"The following service limits were exceeded: {body['nodeShape']} core count. Request a service limit increase from the service limits page in the console.",
                )
            pool = OkePool(f"ocid1.nodepool.oc1.iad.{next(self.ids):08x}", body)
            self.pools[pool.id] = pool
            request = self._grow(pool, size, "NODEPOOL_CREATE")
            log.info(
                "creating node pool %s (%s, %d node(s))", body["name"], body["nodeShape"], size
            )
            return 202, {}, {"opc-work-request-id": request.id}

    def _grow(self, pool: OkePool, size: int, operation: str) -> WorkRequest:
        placements = pool.body["nodeConfigDetails"]["placementConfigs"]
        ad = placements[0]["availabilityDomain"]
        preemptible = bool(placements[0].get("preemptibleNodeConfig"))
        live = [n for n in pool.nodes.values() if n.gone_at is None]
        wanted = size - len(live)
        fault = (
            self._fault(("capacity",), pool.body["nodeShape"], preemptible, ad)
            if wanted > 0
            else None
        )
        pool.size = size
        pool.state = "CREATING" if operation == "NODEPOOL_CREATE" else "UPDATING"
        now = self.clock()
        if wanted > 0:
            for _ in range(wanted):
                self._new_node(
                    pool, ad, now, error=("InternalError", OUT_OF_CAPACITY) if fault else None
                )
        else:  # scaled in: failed nodes first, then the newest
            order = sorted(live, key=lambda n: (n.error is None, -int(n.id.rsplit(".", 1)[-1], 16)))
            for node in order[:-wanted]:
                node.state, node.gone_at = "DELETING", now + self.operation_s * self.time_scale

        def finish() -> tuple[str, str] | None:
            pool.state = "ACTIVE"
            for node in pool.nodes.values():
                if node.error is not None and node.state == "CREATING":
                    node.state = "INACTIVE"
            if fault is not None:
                pool.state = "NEEDS_ATTENTION"
                return "InternalError", OUT_OF_CAPACITY
            return None

        return self._work_request(operation, pool, finish)

    def _new_node(
        self, pool: OkePool, ad: str, now: float, error: tuple[str, str] | None = None
    ) -> OkeNode:
        """A node as OKE makes it: the instance OCID, the generated name with the lowest
        slot no live node of the pool holds (the docs call the slot "an ordinal number of
        the node in the subnet"; reusing freed slots is a guess), a private IP."""
        index = next(self.ids)
        taken = {n.name.rsplit("-", 1)[-1] for n in pool.nodes.values() if n.gone_at is None}
        slot = next(i for i in itertools.count() if str(i) not in taken)
        subnet = pool.body["nodeConfigDetails"]["placementConfigs"][0]["subnetId"]
        node = OkeNode(
            f"ocid1.instance.oc1.iad.{index:012x}",
            managed_node_name(self.cluster_id, pool.id, subnet, slot),
            f"10.0.{index // 250 % 250}.{index % 250 + 2}",
            ad,
            "CREATING",
            now + self.operation_s * self.time_scale,
            error=error,
        )
        pool.nodes[node.id] = node
        return node

    def _problems(self, body: Mapping[str, Any]) -> list[str]:
        problems = []
        if body.get("compartmentId") != COMPARTMENT:
            problems.append("compartmentId: authorization failed or requested resource not found.")
        if body.get("clusterId") != self.cluster_id:
            problems.append(f"clusterId {body.get('clusterId')} not found.")
        shape = str(body.get("nodeShape", ""))
        if shape not in self.shapes:
            problems.append(f"Shape {shape} is not valid for node pools.")
        config_ = body.get("nodeShapeConfig") or {}
        if shape.endswith(".Flex") and not (config_.get("ocpus") and config_.get("memoryInGBs")):
            problems.append(f"Flex shape {shape} needs nodeShapeConfig.ocpus and memoryInGBs.")
        if not shape.endswith(".Flex") and config_:
            problems.append(f"nodeShapeConfig applies to Flex shapes only, not {shape}.")
        source = body.get("nodeSourceDetails") or {}
        if source.get("imageId") not in {image for _, image in self.images()}:
            problems.append(
                f"Image {source.get('imageId')} is not an OKE image for {self.version}."
            )
        placements = (body.get("nodeConfigDetails") or {}).get("placementConfigs") or []
        if not placements:
            problems.append("nodeConfigDetails.placementConfigs is required.")
        for placement in placements:
            if placement.get("availabilityDomain") not in ADS:
                problems.append(
                    f"Availability domain {placement.get('availabilityDomain')} is not in {REGION}."
                )
            if placement.get("subnetId") != SUBNET:
                problems.append(f"Subnet {placement.get('subnetId')} not found.")
        problems += self._pod_network_problems(body)
        for label in body.get("initialNodeLabels") or []:
            domain = (
                str(label.get("key", "")).split("/", 1)[0]
                if "/" in str(label.get("key", ""))
                else ""
            )
            if domain.endswith(("kubernetes.io", "k8s.io")) and domain not in (
                "node.kubernetes.io",
                "kubelet.kubernetes.io",
            ):
                problems.append(
                    f"Label {label.get('key')} is in a namespace the kubelet may not set."
                )
        return problems

    def _pod_network_problems(self, body: Mapping[str, Any]) -> list[str]:
        """A VCN-native cluster's pool needs OCI_VCN_IP_NATIVE pod network details naming
        its pod subnets (OCI API reference, OciVcnIpNativeNodePoolPodNetworkOptionDetails:
        `podSubnetIds` required; OKE docs, "Pod Networking": the pool's pod subnet), at
        most 110 pods a node; the refusal's wording: guess."""
        if self.cni_type != "OCI_VCN_IP_NATIVE":
            return []
        node_config = body.get("nodeConfigDetails") or {}
        details = node_config.get("nodePoolPodNetworkOptionDetails") or {}
        if details.get("cniType") != "OCI_VCN_IP_NATIVE":
            return [
                "nodeConfigDetails.nodePoolPodNetworkOptionDetails with cniType "
                "OCI_VCN_IP_NATIVE is required "
                "for a cluster using VCN-native pod networking."
            ]
        subnets = details.get("podSubnetIds") or []
        problems = [f"Subnet {s} not found." for s in subnets if s not in (SUBNET, POD_SUBNET)]
        if not subnets:
            problems.append("nodePoolPodNetworkOptionDetails.podSubnetIds is required.")
        if not 1 <= int(details.get("maxPodsPerNode") or VCN_NATIVE_PODS) <= 110:
            problems.append("nodePoolPodNetworkOptionDetails.maxPodsPerNode must be 1 to 110.")
        return problems

    def update_node_pool(
        self, pool_id: str, raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = _strict("UpdateNodePoolDetails", raw)
        self._throttled()
        with self.lock:
            self.advance()
            pool = self._pool(pool_id)
            if pool.busy:
                raise OciError(
                    409,
                    "Conflict",
                    f"Node pool {pool_id} has a work request in progress ({pool.busy}).",
                )
            size = (body.get("nodeConfigDetails") or {}).get("size")
            if size is None:
                raise OciError(
                    400, "InvalidParameter", "nodeConfigDetails.size is required to resize."
                )
            placements = pool.body["nodeConfigDetails"]["placementConfigs"]
            preemptible = bool(placements[0].get("preemptibleNodeConfig"))
            if (
                int(size) > pool.size
                and self._fault(
                    ("quota",),
                    pool.body["nodeShape"],
                    preemptible,
                    placements[0]["availabilityDomain"],
                )
                is not None
            ):
                raise OciError(
                    400,
                    "LimitExceeded",
                    f"The following service limits were exceeded: {pool.body['nodeShape']} core count.",
                )
            request = self._grow(pool, int(size), "NODEPOOL_UPDATE")
            return 202, {}, {"opc-work-request-id": request.id}

    def delete_node(
        self, pool_id: str, node_id: str, query: Mapping[str, list[str]]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self._throttled()
        with self.lock:
            self.advance()
            pool = self._pool(pool_id)
            node = pool.nodes.get(node_id)
            if node is None or node.gone_at is not None:
                raise OciError(
                    404,
                    "NotAuthorizedOrNotFound",
                    f"Node {node_id} not found in node pool {pool_id}.",
                )
            if pool.busy:
                raise OciError(
                    409,
                    "Conflict",
                    f"Node pool {pool_id} has a work request in progress ({pool.busy}).",
                )
            node.state, node.gone_at = "DELETING", self.clock() + self.operation_s * self.time_scale
            if (query.get("isDecrementSize") or ["false"])[0] == "true":
                pool.size = max(0, pool.size - 1)
            else:  # OKE replaces it
                self._new_node(pool, node.availability_domain, self.clock())
            request = self._work_request("NODEPOOL_UPDATE", pool, lambda: None)
            return 202, {}, {"opc-work-request-id": request.id}

    def delete_node_pool(self, pool_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        self._throttled()
        with self.lock:
            self.advance()
            pool = self._pool(pool_id)
            if pool.busy:
                raise OciError(
                    409,
                    "Conflict",
                    f"Node pool {pool_id} has a work request in progress ({pool.busy}).",
                )
            pool.state = "DELETING"
            for node in pool.nodes.values():
                node.state, node.gone_at = (
                    "DELETING",
                    self.clock() + self.operation_s * self.time_scale,
                )

            def finish() -> None:
                self.pools.pop(pool_id, None)

            request = self._work_request("NODEPOOL_DELETE", pool, finish)
            return 202, {}, {"opc-work-request-id": request.id}

    def _pool(self, pool_id: str) -> OkePool:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise OciError(404, "NotAuthorizedOrNotFound", f"Node pool {pool_id} not found.")
        return pool

    def pool_json(self, pool: OkePool) -> dict[str, Any]:
        body = {key: value for key, value in pool.body.items() if key != "nodeConfigDetails"}
        body.update(
            id=pool.id,
            lifecycleState=pool.state,
            kubernetesVersion=self.version,
            nodeConfigDetails={**pool.body["nodeConfigDetails"], "size": pool.size},
            nodes=[self._node_json(pool, n) for n in pool.nodes.values()],
        )
        return body

    def _node_json(self, pool: OkePool, node: OkeNode) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": node.id,
            "name": node.name,
            "availabilityDomain": node.availability_domain,
            "subnetId": SUBNET,
            "nodePoolId": pool.id,
            "privateIp": node.private_ip,
            "kubernetesVersion": self.version,
            "lifecycleState": node.state,
        }
        if node.error is not None:
            out["nodeError"] = {"code": node.error[0], "message": node.error[1], "status": "500"}
            out["lifecycleDetails"] = node.error[1]
        return out

    def get_node_pool(self, pool_id: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            return self.pool_json(self._pool(pool_id))

    def list_node_pools(
        self, query: Mapping[str, list[str]]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        with self.lock:
            self.advance()
            if (query.get("compartmentId") or [""])[0] != COMPARTMENT:
                raise OciError(
                    404,
                    "NotAuthorizedOrNotFound",
                    "Authorization failed or requested resource not found.",
                )
            cluster = (query.get("clusterId") or [""])[0]
            pools = [
                p for p in self.pools.values() if not cluster or p.body.get("clusterId") == cluster
            ]
            limit = int((query.get("limit") or ["100"])[0])
            start = int((query.get("page") or ["0"])[0])
            page = pools[start : start + limit]
            headers = {"opc-next-page": str(start + limit)} if start + limit < len(pools) else {}
            summaries = [
                {key: value for key, value in self.pool_json(p).items() if key != "nodes"}
                for p in page
            ]
            return summaries, headers

    def get_work_request(self, request_id: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            request = self.work_requests.get(request_id)
            if request is None:
                raise OciError(
                    404, "NotAuthorizedOrNotFound", f"Work request {request_id} not found."
                )
            return {
                "id": request.id,
                "operationType": request.operation,
                "status": request.status,
                "compartmentId": COMPARTMENT,
                "resources": [
                    {
                        "actionType": "IN_PROGRESS"
                        if request.status == "IN_PROGRESS"
                        else "UPDATED",
                        "entityType": "nodepool",
                        "identifier": request.pool,
                    }
                ],
                "timeAccepted": _stamp(request.accepted),
                "timeFinished": _stamp(request.done_at)
                if request.status in ("FAILED", "SUCCEEDED")
                else None,
            }

    def list_work_request_errors(self, request_id: str) -> list[dict[str, Any]]:
        with self.lock:
            self.advance()
            request = self.work_requests.get(request_id)
            if request is None:
                raise OciError(
                    404, "NotAuthorizedOrNotFound", f"Work request {request_id} not found."
                )
            return [
                {"code": code, "message": message, "timestamp": _stamp(request.done_at)}
                for code, message in request.errors
            ]

    def node_pool_options(self) -> dict[str, Any]:
        return {
            "kubernetesVersions": [self.version],
            "shapes": sorted(self.shapes),
            "sources": [
                {"sourceType": "IMAGE", "sourceName": name, "imageId": image}
                for name, image in self.listed_images()
            ],
        }

    def get_cluster(self, cluster_id: str) -> dict[str, Any]:
        if cluster_id != self.cluster_id:
            raise OciError(404, "NotAuthorizedOrNotFound", f"Cluster {cluster_id} not found.")
        return {
            "id": self.cluster_id,
            "name": self.cluster_name,
            "compartmentId": COMPARTMENT,
            "kubernetesVersion": self.version,
            "lifecycleState": "ACTIVE",
            "vcnId": "ocid1.vcn.oc1.iad.gibbousdev",
            "clusterPodNetworkOptions": [{"cniType": self.cni_type}],
        }

    # --- what the node agent reads -------------------------------------------------------------

    def active_nodes(self) -> list[tuple[OkePool, OkeNode]]:
        with self.lock:
            self.advance()
            return [
                (p, n)
                for p in self.pools.values()
                for n in p.nodes.values()
                if n.state == "ACTIVE" and n.gone_at is None
            ]

    # --- serving -------------------------------------------------------------------------------

    def route(
        self, method: str, path: str, query: Mapping[str, list[str]], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append((method, path))
        if path == "/emulator/faults" and method == "POST":
            with self.lock:
                self.faults = [Fault(**f) for f in json.loads(raw or b"[]")]
            return 200, {"faults": len(self.faults)}, {}
        if path == "/20160918/availabilityDomains" and method == "GET":
            return (
                200,
                [
                    {
                        "name": ad,
                        "id": f"ocid1.availabilitydomain.oc1..{ad[-4:].lower()}",
                        "compartmentId": TENANCY,
                    }
                    for ad in ADS
                ],
                {},
            )
        answered = self.catalog_apis.answer(method, path, query, raw)  # see `catalogapis`
        if answered is not None:
            return answered
        if method == "GET" and self.reads.take():
            # "API Errors": 429 TooManyRequests, "User-rate limit exceeded."; no Retry-After.
            raise OciError(429, "TooManyRequests", "User-rate limit exceeded.")
        parts = path.strip("/").split("/")
        if parts[:1] != ["20180222"]:
            raise OciError(404, "NotAuthorizedOrNotFound", f"{method} {path}: not found.")
        rest = parts[1:]
        if rest == ["nodePools"] and method == "POST":
            return self.create_node_pool(raw)
        if rest == ["nodePools"] and method == "GET":
            items, headers = self.list_node_pools(query)
            return 200, items, headers
        if len(rest) == 2 and rest[0] == "nodePools":
            if method == "GET":
                return 200, self.get_node_pool(rest[1]), {}
            if method == "PUT":
                return self.update_node_pool(rest[1], raw)
            if method == "DELETE":
                return self.delete_node_pool(rest[1])
        if len(rest) == 4 and rest[0] == "nodePools" and rest[2] == "node" and method == "DELETE":
            return self.delete_node(rest[1], rest[3], query)
        if len(rest) == 2 and rest[0] == "workRequests" and method == "GET":
            return 200, self.get_work_request(rest[1]), {}
        if len(rest) == 3 and rest[0] == "workRequests" and rest[2] == "errors" and method == "GET":
            return 200, self.list_work_request_errors(rest[1]), {}
        if len(rest) == 2 and rest[0] == "nodePoolOptions" and method == "GET":
            return 200, self.node_pool_options(), {}
        if len(rest) == 2 and rest[0] == "clusters" and method == "GET":
            return 200, self.get_cluster(rest[1]), {}
        raise OciError(404, "NotAuthorizedOrNotFound", f"{method} {path}: not found.")

    def verify(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> None:
        """OCI's request signature: draft-cavage HTTP signatures over the headers OCI signs."""
        if self.public_key is None:
            return
        authorization = headers.get("authorization", "")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', authorization))
        if not authorization.startswith("Signature ") or fields.get("algorithm") != "rsa-sha256":
            raise OciError(
                401,
                "NotAuthenticated",
                "The required information to complete authentication was not provided.",
            )
        lines = []
        for name in fields.get("headers", "").split():
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
            else:
                lines.append(f"{name}: {headers.get(name, '')}")
        if method in ("POST", "PUT"):
            digest = base64.b64encode(_sha256(body)).decode()
            if (
                "x-content-sha256" not in fields.get("headers", "")
                or headers.get("x-content-sha256") != digest
            ):
                raise OciError(
                    401, "NotAuthenticated", "The body's x-content-sha256 is missing or wrong."
                )
        try:
            self.public_key.verify(
                base64.b64decode(fields.get("signature", "")),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            raise OciError(
                401,
                "NotAuthenticated",
                "The required information to complete authentication was not provided or was incorrect.",
            ) from None
        date = email.utils.parsedate_to_datetime(
            headers.get("date", "Thu, 01 Jan 1970 00:00:00 GMT")
        ).timestamp()
        if abs(time.time() - date) > 300:
            raise OciError(
                401, "NotAuthenticated", "The request's date is more than 5 minutes off."
            )

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(target)
        extra = {"opc-request-id": f"req-{next(self.ids):08x}"}
        try:
            if url.path not in ("/emulator/faults", *UNSIGNED_PATHS):
                self.verify(method, target, headers, raw)
            status, body, more = self.route(method, url.path, parse_qs(url.query), raw)
        except (OciError, CatalogApiError) as error:
            return error.status, OciError(error.status, error.code, str(error)).body(), extra
        return status, (None if status == 202 and body == {} else body), {**extra, **more}

    def serve(self, port: int = 0) -> ThreadingHTTPServer:
        return serve_json(self.handle, name="oke-emulator", port=port)


def _strict(model: str, raw: bytes) -> dict[str, Any]:
    """The body as OCI reads it: every key an attribute of the SDK's model, recursively."""
    try:
        document = json.loads(raw or b"{}")
    except ValueError as error:
        raise OciError(
            400, "InvalidParameter", f"The request body is not valid JSON: {error}"
        ) from None
    problems: list[str] = []
    _check(model, document, "", problems)
    if problems:
        raise OciError(400, "InvalidParameter", "; ".join(problems))
    return dict(document)


def _check(type_name: str, value: Any, where: str, problems: list[str]) -> None:
    if type_name.startswith("list[") and type_name.endswith("]"):
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list")
            return
        for index, item in enumerate(value):
            _check(type_name[5:-1], item, f"{where}[{index}]", problems)
        return
    if type_name.startswith("dict(") or type_name in (
        "str",
        "int",
        "float",
        "bool",
        "object",
        "datetime",
    ):
        return
    model = getattr(MODELS, type_name, None) or getattr(IDENTITY_MODELS, type_name, None)
    if model is None:
        return
    if not isinstance(value, dict):
        problems.append(f"{where or '$'}: expected an object of type {type_name}")
        return
    if hasattr(model, "get_subtype"):
        try:
            subtype = model.get_subtype(value)
        except KeyError as error:
            problems.append(f"{where or '$'}: the discriminator {error} is missing")
            return
        model = getattr(MODELS, subtype, model)
    instance = model()
    by_json = {json_name: attr for attr, json_name in instance.attribute_map.items()}
    for key, item in value.items():
        path = f"{where}.{key}" if where else key
        if key not in by_json:
            problems.append(f"Unknown field '{path}' for {model.__name__}")
            continue
        _check(instance.swagger_types[by_json[key]], item, path, problems)


def _sha256(body: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(body)
    return digest.finalize()


def _base_shape(name: str) -> str:
    """`VM.Standard.E4.Flex-4-32` -> `VM.Standard.E4.Flex`: the catalog's Flex entries carry
    their OCPUs and memory in the name."""
    return re.sub(r"-\d+(\.\d+)?-\d+$", "", name) if ".Flex-" in name else name


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when))


def emulator_identity() -> tuple[dict[str, Any], Any]:
    """An OCI SDK config for the emulator and the matching public key: a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key()
    fingerprint = _fingerprint(public)
    sdk_config = {
        "user": USER,
        "tenancy": TENANCY,
        "fingerprint": fingerprint,
        "region": REGION,
        "key_content": pem,
    }
    return sdk_config, public


def _fingerprint(public: Any) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.MD5())
    digest.update(der)
    return ":".join(f"{b:02x}" for b in digest.finalize())

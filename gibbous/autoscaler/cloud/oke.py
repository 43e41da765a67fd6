"""OKE provider (the `oci` SDK, an optional extra): node pools Gibbous creates, one per
node shape, sized by batches of launches; a single node removed with `DeleteNode` and
decrement-size. The pool logic is `sizedpools.SizedPoolProvider`'s; this module is the
OCI calls and what their answers mean.

A pool carries the shape (Flex shapes with the OCPUs and memory of the catalog entry
`<shape>-<ocpus>-<GB>`), the OKE node image for the cluster's version and the shape's
architecture and GPU (or `oci.imageId`), the boot volume size, one placement (availability
domain and node subnet) with preemptible capacity for spot, the initial node labels, and
freeform tags carrying the cluster id. OKE node pools have no taints field: Gibbous's
taints reach the kubelet through the pool's cloud-init (`user_data`: OKE's default
script with `--kubelet-extra-args "--register-with-taints=..."`, OKE's documented way);
if a node registered without them, the autoscaler adds them and says so
(`GibbousRepairedNode`).

Failures arrive in work requests: "Out of host capacity" (an `InternalError`, also in a
node's `nodeError`) is a stock-out, `LimitExceeded` / `QuotaExceeded` are quota. The SDK's
retries are off (its default retries 5xx for up to 600 s, which would hide "Out of host
capacity").
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import logging
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import oci

from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    InsufficientCapacityError,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.ocicatalog import OciCatalogFeed
from gibbous.autoscaler.cloud.okelive import FollowingPoolProvider
from gibbous.autoscaler.cloud.sizedpools import Member, PoolView, Shape, SizedPoolProvider
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.podcapacity import oci_vnics, oke_max_pods
from gibbous.core.settings.options.oci import OciConfig

log = logging.getLogger("gibbous.autoscaler.oke")

POOL_PREFIX = "gbs-"
CLUSTER_TAG = "gibbous-cluster-id"
CLOUD_LABEL_DOMAINS = frozenset(
    {
        "kubernetes.io",
        "node.kubernetes.io",
        "beta.kubernetes.io",
        "topology.kubernetes.io",
        "failure-domain.beta.kubernetes.io",
        "oci.oraclecloud.com",
    }
)
PER_NODE_LABELS = frozenset({keys.ASSIGNED_POD_UID})
QUOTA_CODES = frozenset({"LimitExceeded", "QuotaExceeded"})
MODELS = oci.container_engine.models
# GetNodePool calls a second the pool listing may spend (a burst of as many): with n
# pools each is read again every n / this seconds, a changed one first.
POOL_READS_PER_S = 3.0


def is_out_of_capacity(code: str, message: str) -> bool:
    return "out of host capacity" in message.lower() or code == "OutOfHostCapacity"


def failure_of(code: str, message: str) -> tuple[str, str]:
    """(FailureKind value, reason) of a failure in a work request or a node's nodeError."""
    if code in QUOTA_CODES:
        return "quota", f"{code}: {message}"
    if is_out_of_capacity(code, message):
        return "insufficient-capacity", f"{code}: {message}"
    return "provider-error", f"{code}: {message}"  # not a stock-out: no back-off as one


def classify_api_error(error: oci.exceptions.ServiceError, zone: str = "") -> CloudError:
    status, code, message = error.status, str(error.code), str(error.message)
    text = f"OKE ({status} {code}): {message}"
    if status == 429:
        return ThrottledError(2.0, text)
    if status == 409:
        return ThrottledError(3.0, text)  # a work request runs on the pool
    if code in QUOTA_CODES:
        return QuotaExceededError("", "", text)
    if is_out_of_capacity(code, message):
        return InsufficientCapacityError("", "", zone, text)
    if status in (401, 403) or (status == 404 and code == "NotAuthorizedOrNotFound"):
        return FatalConfigurationError(
            f"{text}; Gibbous's principal needs the policies in the README's 'Install on OKE'"
        )
    return CloudError(text)


def flex_config(instance_type: InstanceType) -> tuple[str, float, float] | None:
    """(shape, OCPUs, GB) of a catalog Flex entry `VM.Standard.E4.Flex-4-32`, else None."""
    match = re.fullmatch(r"(.+\.Flex)-(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", instance_type.name)
    return (match.group(1), float(match.group(2)), float(match.group(3))) if match else None


def pick_image(sources: builtins.list[tuple[str, str]], version: str, arch: str, gpu: bool) -> str:
    """The OKE node image for a Kubernetes version, architecture and GPU, from
    GetNodePoolOptions' sources (name, OCID); "" when none fits."""
    release = version.lstrip("v")
    for name, image in sources:
        # `...-OKE-<version>-<build>`: the version whole, so 1.31.1 never takes 1.31.10's.
        match = re.search(r"-OKE-(\d+(?:\.\d+)+)-\d+$", name)
        if match is None or match.group(1) != release:
            continue
        if ("aarch64" in name) != (arch == "arm64"):
            continue
        if ("GPU" in name) != gpu:
            continue
        return image
    return ""


@dataclass
class OkePools:
    """The Container Engine calls of `SizedPoolProvider` on OKE; operations are work
    request OCIDs."""

    client: Any  # oci.container_engine.ContainerEngineClient
    config: OciConfig
    cluster_id: str  # Gibbous's clusterID
    version: str  # the cluster's Kubernetes version
    availability_domains: tuple[str, ...]
    images: builtins.list[tuple[str, str]]
    types: Mapping[str, InstanceType]
    identity: Any = None  # oci.identity.IdentityClient, kept to be closed
    by_pool: dict[str, str] = field(default_factory=dict)  # pool name -> OCID
    cni_types: tuple[str, ...] = ()  # the cluster's clusterPodNetworkOptions
    clock: Callable[[], float] = time.time
    # pool OCID -> (read at, (lifecycle state, size) of its summary then, its view)
    views: dict[str, tuple[float, tuple[str, int], PoolView]] = field(default_factory=dict)
    listed: tuple[float, dict[str, str]] | None = None  # (when, our pool names -> OCIDs)
    unlisted: set[str] = field(default_factory=set)  # created since that listing
    get_budget: float = POOL_READS_PER_S  # GetNodePool calls `pools` may make now
    budget_at: float = 0.0

    def create_only(self, shape: Shape) -> tuple[Any, ...]:
        # UpdateNodePool can change what a pool is created with, but a changed boot volume
        # reaches only nodes made after it: a pool for a larger disk is a pool of its own.
        return (("bootVolumeSizeInGBs", shape.disk_gib),) if shape.disk_gib else ()

    def zone_name(self, zone: str) -> str:
        return zone.split(":", 1)[-1]

    def cloud_zone(self, zone: str) -> str:
        for ad in self.availability_domains:
            if ad.split(":", 1)[-1].lower() == zone.lower() or ad == zone:
                return ad
        return ""

    def default_zone(self) -> str:
        return self.availability_domains[0] if self.availability_domains else ""

    def close(self) -> None:
        self.client.base_client.session.close()
        if self.identity is not None:
            self.identity.base_client.session.close()

    def _call(self, function: Callable[..., Any], *args: Any, zone: str = "", **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except oci.exceptions.ServiceError as error:
            raise classify_api_error(error, zone) from None
        except oci.exceptions.RequestException as error:
            raise CloudError(f"OKE unreachable: {error}") from None

    def details(self, shape: Shape, name: str, count: int) -> Any:
        instance_type = self.types[shape.instance_type]
        flex = flex_config(instance_type)
        image = self.config.image_id or pick_image(
            self.images, self.version, instance_type.arch, bool(instance_type.gpu_count)
        )
        if not image:
            raise CloudError(
                f"no OKE node image for Kubernetes {self.version}, {instance_type.arch}"
                f"{', GPU' if instance_type.gpu_count else ''}: set oci.imageId"
            )
        placement = MODELS.NodePoolPlacementConfigDetails(
            availability_domain=shape.zone, subnet_id=self.config.subnet_id
        )
        if shape.spot:
            placement.preemptible_node_config = MODELS.PreemptibleNodeConfigDetails(
                preemption_action=MODELS.TerminatePreemptionAction(
                    type="TERMINATE", is_preserve_boot_volume=False
                )
            )
        metadata = {}
        if shape.taints:
            taints = ",".join(f"{k}={v}:{e}" for k, v, e in shape.taints)
            metadata["user_data"] = oke_cloud_init(f"--register-with-taints={taints}")
        details = MODELS.CreateNodePoolDetails(
            compartment_id=self.config.compartment_id,
            cluster_id=self.config.cluster_id,
            name=name,
            kubernetes_version=self.version,
            node_shape=flex[0] if flex else instance_type.name,
            node_source_details=MODELS.NodeSourceViaImageDetails(
                source_type="IMAGE",
                image_id=image,
                boot_volume_size_in_gbs=shape.disk_gib or self.config.boot_volume_size_gb,
            ),
            initial_node_labels=[MODELS.KeyValue(key=k, value=v) for k, v in shape.labels],
            node_metadata=metadata or None,
            node_config_details=MODELS.CreateNodePoolNodeConfigDetails(
                size=count,
                placement_configs=[placement],
                node_pool_pod_network_option_details=self.pod_network(),
            ),
            freeform_tags={CLUSTER_TAG: self.cluster_id},
        )
        if flex:
            details.node_shape_config = MODELS.CreateNodeShapeConfigDetails(
                ocpus=flex[1], memory_in_gbs=flex[2]
            )
        if self.config.ssh_public_key:
            details.ssh_public_key = self.config.ssh_public_key
        return details

    def pod_network(self) -> Any:
        """A VCN-native cluster's pool names its pod subnets (OKE refuses it otherwise);
        with flannel, OKE's default."""
        if "OCI_VCN_IP_NATIVE" not in self.cni_types:
            return None
        return MODELS.OciVcnIpNativeNodePoolPodNetworkOptionDetails(
            pod_subnet_ids=list(self.config.pod_subnet_ids or (self.config.subnet_id,)),
            max_pods_per_node=oke_max_pods(self.cni_types, self.config.max_pods_per_node),
        )

    def _view(self, pool: Any) -> PoolView:
        placements = pool.node_config_details.placement_configs if pool.node_config_details else []
        placement = placements[0] if placements else None
        shape_config = pool.node_shape_config
        name = pool.node_shape
        if shape_config is not None and shape_config.ocpus:
            name = f"{pool.node_shape}-{shape_config.ocpus:g}-{shape_config.memory_in_gbs:g}"
        members = []
        for node in pool.nodes or []:
            if node.lifecycle_state in ("DELETING", "DELETED"):
                continue
            failure = None
            if node.node_error is not None and (node.node_error.code or node.node_error.message):
                failure = failure_of(str(node.node_error.code), str(node.node_error.message))
            # The Kubernetes Node is named by the private IP, never `node.name` (OKE's
            # `oke-c...-n...-s...-<slot>`): an instance under that name would never meet
            # its Node and be collected as an orphan.
            members.append(
                Member(
                    node.name or node.id,
                    node.id,
                    node.lifecycle_state == "ACTIVE",
                    failure,
                    node=node.private_ip or "",
                )
            )
        return PoolView(
            name=pool.name,
            shape=Shape(
                instance_type=name,
                spot=bool(placement and placement.preemptible_node_config),
                zone=placement.availability_domain if placement else "",
                labels=tuple(sorted((kv.key, kv.value) for kv in pool.initial_node_labels or [])),
                taints=(),
            ),
            count=int(pool.node_config_details.size or 0) if pool.node_config_details else 0,
            busy=pool.lifecycle_state in ("CREATING", "UPDATING", "DELETING"),
            failed=pool.lifecycle_state == "NEEDS_ATTENTION",
            members=tuple(sorted(members, key=lambda m: m.name)),
            handle=pool.id,
        )

    def _ours(self, summary: Any) -> bool:
        tags = summary.freeform_tags or {}
        return bool(
            summary.name.startswith(POOL_PREFIX) and tags.get(CLUSTER_TAG) == self.cluster_id
        )

    def _summaries(self) -> builtins.list[Any]:
        summaries = self._call(
            oci.pagination.list_call_get_all_results,
            self.client.list_node_pools,
            self.config.compartment_id,
            cluster_id=self.config.cluster_id,
        ).data
        ours = [s for s in summaries if self._ours(s) and s.lifecycle_state != "DELETED"]
        now = self.clock()
        self.listed, self.unlisted = (now, {s.name: s.id for s in ours}), set()
        self.by_pool.update(self.listed[1])
        return ours

    def pools(self) -> builtins.list[PoolView]:
        """One ListNodePools, then GetNodePool (the only read with the nodes) within a
        budget of POOL_READS_PER_S: a pool never read first, then those whose summary
        changed (state or size), then the longest unread; the others as last read. At
        dozens of pools a GET of each every loop period would be throttled (OCI answers
        429 and publishes no rate). A throttled GET keeps the pool's last view."""
        ours = self._summaries()
        now = self.clock()
        self.get_budget = min(
            POOL_READS_PER_S, self.get_budget + (now - self.budget_at) * POOL_READS_PER_S
        )
        self.budget_at = now
        self.views = {s.id: self.views[s.id] for s in ours if s.id in self.views}

        def key(summary: Any) -> tuple[str, int]:
            details = summary.node_config_details
            return str(summary.lifecycle_state), int(details.size or 0) if details else 0

        def urgency(summary: Any) -> tuple[int, float]:
            cached = self.views.get(summary.id)
            if cached is None:
                return 0, 0.0
            return (1 if cached[1] != key(summary) else 2), cached[0]

        for summary in sorted(ours, key=urgency):
            cached = self.views.get(summary.id)
            if cached is not None and (self.get_budget < 1 or cached[0] >= now):
                continue
            try:
                view = self._view(self._call(self.client.get_node_pool, summary.id).data)
            except ThrottledError:
                if cached is None:
                    raise
                self.get_budget = 0.0
                continue
            self.get_budget -= 1
            self.views[summary.id] = (now, key(summary), view)
        return [self.views[s.id][2] for s in ours]

    def pool(self, name: str) -> PoolView | None:
        pool_id = self.by_pool.get(name)
        if pool_id is None:
            # One listing a second answers every pool this process has not met (a burst of
            # new shapes asks for each), never one per pool.
            fresh = self.listed is not None and self.clock() - self.listed[0] < 1.0
            if not fresh or name in self.unlisted:
                self._summaries()
            pool_id = self.listed[1].get(name) if self.listed is not None else None
            if pool_id is None:
                return None
        try:
            found = self.client.get_node_pool(pool_id).data
        except oci.exceptions.ServiceError as error:
            if error.status == 404:
                self.by_pool.pop(name, None)
                return None
            raise classify_api_error(error) from None
        return self._view(found) if found.lifecycle_state != "DELETED" else None

    def resize(self, shape: Shape, name: str, count: int, existing: PoolView | None) -> Any:
        if existing is None:
            self.unlisted.add(name)  # listings before this cannot say it is absent
            response = self._call(
                self.client.create_node_pool,
                self.details(shape, name, count),
                zone=self.zone_name(shape.zone),
            )
        else:
            update = MODELS.UpdateNodePoolDetails(
                node_config_details=MODELS.UpdateNodePoolNodeConfigDetails(size=count)
            )
            response = self._call(
                self.client.update_node_pool,
                existing.handle,
                update,
                zone=self.zone_name(shape.zone),
            )
        return response.headers.get("opc-work-request-id")

    def finished(self, operation: Any) -> tuple[bool, tuple[str, str] | None]:
        request = self._call(self.client.get_work_request, operation).data
        if request.status in ("ACCEPTED", "IN_PROGRESS", "CANCELING"):
            return False, None
        if request.status == "SUCCEEDED":
            return True, None
        errors = (
            self._call(
                self.client.list_work_request_errors, self.config.compartment_id, operation
            ).data
            or []
        )
        for error in errors:
            if is_out_of_capacity(str(error.code), str(error.message)) or error.code in QUOTA_CODES:
                return True, failure_of(str(error.code), str(error.message))
        first = errors[0] if errors else None
        return True, failure_of(
            str(first.code) if first else request.status,
            str(first.message) if first else f"work request {request.status}",
        )

    def remove(self, pool: PoolView, member: Member) -> Any:
        response = self._call(
            self.client.delete_node, pool.handle, member.id, is_decrement_size=True
        )
        return response.headers.get("opc-work-request-id")

    def delete_pool(self, pool: PoolView) -> Any:
        response = self._call(self.client.delete_node_pool, pool.handle)
        self.by_pool.pop(pool.name, None)
        return response.headers.get("opc-work-request-id")


# OKE's default cloud-init for managed nodes, as "Using Custom Cloud-init Initialization
# Scripts to Set Up Managed Nodes" gives it, with the kubelet's extra arguments passed to
# the bootstrap script the way that page's examples pass them.
_OKE_INIT = (
    "#!/bin/bash\n"
    'curl --fail -H "Authorization: Bearer Oracle" -L0 '
    "http://169.254.169.254/opc/v2/instance/metadata/oke_init_script "
    "| base64 --decode >/var/run/oke-init.sh\n"
    "bash /var/run/oke-init.sh --kubelet-extra-args {args}\n"
)


def oke_cloud_init(kubelet_args: str) -> str:
    """The node pool's `user_data` (base64, as OCI instance metadata takes it): OKE's own
    bootstrap, giving the kubelet `kubelet_args`."""
    script = _OKE_INIT.format(args=shlex.quote(kubelet_args))
    return base64.b64encode(script.encode()).decode()


def sdk_clients(config: Mapping[str, Any] | None = None, endpoint: str = "") -> tuple[Any, Any]:
    """(Container Engine, Identity) clients with retries and the circuit breaker off: the
    config's API key (the emulator's, at `endpoint`), else OKE workload identity, else
    instance principals. The SDK's default circuit breaker opens after 10 throttled or
    failed calls and then refuses every call for 30 s with its own exception: Gibbous
    backs off from a 429 itself, per call, and must see each answer."""
    none = oci.retry.NoneRetryStrategy()
    breaker = oci.circuit_breaker.NoCircuitBreakerStrategy()
    if config is not None:
        signer = oci.signer.Signer(
            config["tenancy"],
            config["user"],
            config["fingerprint"],
            config.get("key_file"),
            private_key_content=config.get("key_content"),
        )
        kwargs: dict[str, Any] = {
            "signer": signer,
            "retry_strategy": none,
            "circuit_breaker_strategy": breaker,
        }
        if endpoint:
            kwargs["service_endpoint"] = endpoint
        container = oci.container_engine.ContainerEngineClient(dict(config), **kwargs)
        identity = oci.identity.IdentityClient(dict(config), **kwargs)
        return container, identity
    try:
        signer = oci.auth.signers.get_oke_workload_identity_resource_principal_signer()
    except Exception:  # not on an enhanced OKE cluster with workload identity
        signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
    region = {"region": signer.region}
    common = {"signer": signer, "retry_strategy": none, "circuit_breaker_strategy": breaker}
    return (
        oci.container_engine.ContainerEngineClient(region, **common),
        oci.identity.IdentityClient(region, **common),
    )


def discover(
    *,
    container: Any,
    identity: Any,
    config: OciConfig,
    cluster_id: str,
    catalog: builtins.list[InstanceType],
    clock: Callable[[], float],
    empty_pool_s: float,
    catalog_feed: OciCatalogFeed | None = None,
) -> SizedPoolProvider:
    """The provider for this cluster: its version, the region's availability domains and
    the OKE node images are read once. With `catalog_feed` (the live catalog, see
    `ocicatalog`) the provider follows the feed's catalog as it is refreshed."""
    for key, value in (
        ("oci.compartmentId", config.compartment_id),
        ("oci.clusterId", config.cluster_id),
        ("oci.subnetId", config.subnet_id),
    ):
        if not value:
            raise FatalConfigurationError(f"set {key}")
    try:
        cluster = container.get_cluster(config.cluster_id).data
        ads = config.availability_domains or tuple(
            ad.name for ad in identity.list_availability_domains(config.compartment_id).data
        )
        options = container.get_node_pool_options(config.cluster_id).data
    except oci.exceptions.ServiceError as error:
        raise FatalConfigurationError(
            f"reading OKE cluster {config.cluster_id}: {error.code}: {error.message}"
        ) from None
    images = [
        (s.source_name, s.image_id) for s in options.sources or [] if getattr(s, "image_id", None)
    ]
    cni_types = tuple(str(o.cni_type) for o in cluster.cluster_pod_network_options or [])
    # Planning counts the pod slots the kubelet will register: the pod network's.
    # Nodes go in the availability domains Gibbous may use, labelled with the AD's name
    # without its tenancy prefix, as OKE labels them.
    zone_labels = tuple(ad.split(":", 1)[-1] for ad in ads)

    def launchable(found: builtins.list[InstanceType]) -> builtins.list[InstanceType]:
        return [
            dataclasses.replace(
                t,
                max_pods=oke_max_pods(cni_types, config.max_pods_per_node, oci_vnics(t.name)),
                zones=zone_labels,
            )
            for t in found
        ]

    catalog_version = 0
    if catalog_feed is not None:
        catalog_version, catalog = catalog_feed.current()
    catalog = launchable(catalog)
    types = {t.name: t for t in catalog}
    common: dict[str, Any] = {
        "cloud": OkePools(
            container,
            config,
            cluster_id,
            cluster.kubernetes_version,
            tuple(ads),
            images,
            types,
            cni_types=cni_types,
            clock=clock,
        ),
        "catalog": catalog,
        "clock": clock,
        "cluster_id": cluster_id,
        "name": "oci",
        "pool_prefix": POOL_PREFIX,
        "pool_digits": 12,
        "cloud_label_keys": CLOUD_LABEL_DOMAINS,
        "late_label_keys": PER_NODE_LABELS,
        "empty_pool_s": empty_pool_s,
    }
    if catalog_feed is not None:
        return FollowingPoolProvider(
            **common, feed=catalog_feed, launchable=launchable, catalog_version=catalog_version
        )
    return SizedPoolProvider(**common)

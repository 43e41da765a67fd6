"""Gibbous configuration: Luna's option names, typed, validated, with defaults.

Sources, lowest precedence first: built-in defaults, the YAML file, environment
variables `GIBBOUS_<key>` (dots written `__`, e.g. `GIBBOUS_scaleDown__enabled`)
and `--set key=value` (Helm's habit). The shell reads files and the
environment; this module only interprets the values.

Unknown keys and bad values fail with a message naming the key, the value and
the accepted form, and suggest the closest valid key.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from gibbous.core import keys
from gibbous.core.errors import ConfigError, GibbousError
from gibbous.core.grammar.duration import format_duration, parse_duration
from gibbous.core.grammar.pattern import PatternError, UserPattern, compile_pattern
from gibbous.core.grammar.quantity import format_bytes, format_cpu, to_millis, to_units
from gibbous.core.podmodel.constraints import PriceCategory, parse_offerings
from gibbous.core.settings.userdata import UserDataType, check_user_data

CLOUDS = ("aws", "gcp", "azure", "oci")
DEFAULT_REGIONS = {
    "aws": "us-west-2",
    "gcp": "us-central1",
    "azure": "eastus",
    "oci": "us-ashburn-1",
}
ARCHITECTURES = ("amd64", "arm64")

# Matches kube-scheduler's "0/N nodes are available", "no nodes available to schedule pods"
# (its message when the cluster has no node at all) and "Insufficient <resource>"
# (capitalised, as kube-scheduler writes it), and KAI's resource-shortage messages;
# not queue/quota refusals (KAI over-quota and OverLimit, Volcano "queue resource
# quota insufficient: insufficient cpu"). See docs/decisions.md.
DEFAULT_PENDING_REASON_REGEXP = (
    r"^0/[0-9]+ nodes are available|^no nodes available to schedule pods|"
    r"[Nn]o (?:node|nodes)\b.*\b(?:resources|enough)|"
    r"Insufficient (?:cpu|memory|nvidia\.com/gpu|ephemeral-storage|pods)"
)


@dataclass(frozen=True)
class HotNodeConfig:
    enabled: bool = False
    loop_period_s: float = 60.0
    yellow_cpu: float = 60.0
    yellow_memory: float = 65.0
    red_cpu: float = 80.0
    red_memory: float = 85.0
    green_cpu: float = 10.0
    green_memory: float = 15.0


@dataclass(frozen=True)
class ScaleDownConfig:
    enabled: bool = True
    unneeded_time_s: float = 300.0
    bin_pack_utilization_threshold: float = 0.1
    delay_after_add_s: float = 300.0
    max_draining_nodes: int = 1
    max_draining_percent: float = 10.0


@dataclass(frozen=True)
class NodeOverheadConfig:
    """What a node keeps for itself; allocatable = capacity - all of this."""

    reservation: str = "tiered"  # tiered (GKE/AKS formula) | none
    cpu_millis: int = 0  # extra fixed reservation
    memory_bytes: int = 0
    eviction_memory_bytes: int = 100 * 2**20
    daemonset_cpu_millis: int = 100
    daemonset_memory_bytes: int = 200 * 2**20
    max_pods: int = 110


@dataclass(frozen=True)
class AwsConfig:
    """Luna's `aws:` values: how EC2 nodes are launched and join the cluster."""

    cluster_name: str = ""  # the EKS cluster (eks:DescribeCluster); empty: clusterID
    subnets: tuple[str, ...] = ()  # empty on EKS: the cluster's tagged subnets
    security_groups: tuple[str, ...] = ()  # empty on EKS: the cluster security group
    node_instance_profile: str = ""
    ami_id_generic: str = ""
    ami_id_generic_arm: str = ""
    ami_id_gpu: str = ""
    image_ssm_query_generic: str = ""  # `%s` is the Kubernetes version
    image_ssm_query_generic_arm: str = ""
    image_ssm_query_gpu: str = ""
    is_bottlerocket_image: bool = False
    user_data_type: UserDataType = UserDataType.AL2023
    user_data: str = ""
    block_device_mappings: tuple[Mapping[str, Any], ...] = ()
    use_spot_advisor: bool = False
    spot_advisor_file: str = ""
    max_spot_interrupt_bucket: int | None = None
    max_spot_price_ratio: float | None = None

    @property
    def effective_user_data_type(self) -> UserDataType:
        """Luna's Bottlerocket setup names the image, not the user-data type."""
        if self.is_bottlerocket_image and self.user_data_type is UserDataType.AL2023:
            return UserDataType.BOTTLEROCKET
        return self.user_data_type


@dataclass(frozen=True)
class GcpConfig:
    """Luna's `gcp:` values: the GKE cluster and how its node pools' nodes are made."""

    project: str = ""  # empty: Application Default Credentials' project
    location: str = ""  # the cluster's location; empty: region
    cluster_name: str = ""  # empty: clusterID
    disk_size_gb: int = 100
    disk_type: str = "pd-balanced"
    service_account: str = ""  # empty: the Compute Engine default service account
    image_streaming: bool = False  # GKE's gcfsConfig (Luna enables it for faster pulls, P11)
    gpu_driver_version: str = "default"  # default | latest | disabled (GKE installs the driver)
    operation_limit: int = 3  # node-pool operations Gibbous runs at once on the cluster


@dataclass(frozen=True)
class AzureConfig:
    """Luna's `azure:` values: the AKS cluster and how its agent pools' nodes are made."""

    subscription_id: str = ""  # empty: AZURE_SUBSCRIPTION_ID
    resource_group: str = ""  # the cluster's resource group (required on AKS)
    cluster_name: str = ""  # empty: clusterID
    os_disk_size_gb: int = 128
    gpu_driver: str = "install"  # install | none (AKS installs the NVIDIA driver, or you do)
    artifact_streaming: bool = False  # AKS Artifact Streaming (Luna enables it, P11)
    vnet_subnet_id: str = ""  # empty: the cluster's node subnet
    max_pods: int = 0  # 0: AKS's default for the cluster's network plugin


@dataclass(frozen=True)
class OciConfig:
    """Luna's `oci:` values: the OKE cluster and how its node pools' nodes are made."""

    compartment_id: str = ""  # the cluster's compartment
    cluster_id: str = ""  # the cluster's OCID
    subnet_id: str = ""  # the node subnet
    availability_domains: tuple[str, ...] = ()  # empty: all of the region's
    image_id: str = ""  # empty: the OKE node image for the cluster's version and the shape
    boot_volume_size_gb: int = 50
    ssh_public_key: str = ""


@dataclass(frozen=True)
class Config:
    managed_label: tuple[str, str] = ("elotl-luna", "true")
    cloud: str = "aws"
    region: str = ""  # empty: the cloud's default region
    zones: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ("amd64",)
    default_offerings: frozenset[PriceCategory] = frozenset({PriceCategory.ON_DEMAND})

    bin_select_cpu_millis: int = 2000
    bin_select_memory_bytes: int = 4 * 2**30
    bin_select_gpus: int = 1
    bin_packing_enabled: bool = True
    bin_select_node_reuse: bool = True
    bin_pack_node_cpu_millis: int = 4000
    bin_pack_node_memory_bytes: int = 16 * 2**30
    bin_pack_node_gpus: int = 0
    bin_pack_node_type_pattern: UserPattern | None = None
    bin_pack_node_pricing: frozenset[PriceCategory] = frozenset({PriceCategory.ON_DEMAND})
    bin_pack_node_strategy: str = "lowest-total-cost"

    spot_price_ratio: float = 0.5
    scale_up_timeout_s: float = 600.0
    registration_timeout_s: float = 900.0
    backoff_s: float = 900.0
    cluster_id: str = "gibbous"
    install_name: str = ""  # with clusterID, names the install owning a node (chart: release)
    scale_up_batch_idle_s: float = 1.0
    scale_up_batch_max_s: float = 10.0
    orphan_grace_s: float = 600.0
    nvidia_gpu_time_slices: int = 1
    place_node_selector: bool = False
    pending_pod_reason_pattern: UserPattern | None = field(
        default_factory=lambda: compile_pattern(DEFAULT_PENDING_REASON_REGEXP)
    )
    cluster_gpu_limit: int | None = None
    max_nodes: int | None = None
    max_cost_per_hour: float | None = None
    node_ttl_s: float = 0.0

    webhook_config_prefix: str = "zz-"
    scheduler_name: str = ""
    provisioning_gate: bool = False
    reroute_stuck_pods: bool = False
    spot_tolerations: tuple[str, ...] | None = None  # None: derived from the cloud
    managed_namespaces: tuple[str, ...] = ()
    estimate_only_namespaces: tuple[str, ...] = ()

    hot_node: HotNodeConfig = field(default_factory=HotNodeConfig)
    scale_down: ScaleDownConfig = field(default_factory=ScaleDownConfig)
    node_overhead: NodeOverheadConfig = field(default_factory=NodeOverheadConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    gcp: GcpConfig = field(default_factory=GcpConfig)
    azure: AzureConfig = field(default_factory=AzureConfig)
    oci: OciConfig = field(default_factory=OciConfig)

    @property
    def effective_region(self) -> str:
        return self.region or DEFAULT_REGIONS[self.cloud]

    @property
    def effective_spot_tolerations(self) -> tuple[str, ...]:
        if self.spot_tolerations is not None:
            return self.spot_tolerations
        own = f"{keys.SPOT_TAINT_KEY}=spot:NoSchedule"
        cloud_taint = {
            "azure": f"{keys.AKS_SCALESET_PRIORITY}=spot:NoSchedule",
            "gcp": f"{keys.GKE_SPOT}=true:NoSchedule",
        }.get(self.cloud)
        return (own, cloud_taint) if cloud_taint else (own,)


# --- option table ------------------------------------------------------------------


def _bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{key}: invalid boolean {value!r} (accepted: true or false)")


def _number(low: float | None = None, high: float | None = None) -> Callable[[object, str], float]:
    def parse(value: object, key: str) -> float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: invalid number {value!r}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: invalid number {value!r}") from None
        if (
            not math.isfinite(number)
            or (low is not None and number < low)
            or (high is not None and number > high)
        ):
            raise ConfigError(f"{key}: {value!r} is out of range [{low}, {high}]")
        return number

    return parse


def _integer(low: int = 0, high: int | None = None) -> Callable[[object, str], int]:
    def parse(value: object, key: str) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{key}: invalid whole number {value!r}")
        try:
            number = int(str(value).strip()) if not isinstance(value, int | float) else int(value)
        except ValueError:
            raise ConfigError(f"{key}: invalid whole number {value!r}") from None
        if number < low or (high is not None and number > high):
            raise ConfigError(f"{key}: {value!r} is out of range [{low}, {high}]")
        return number

    return parse


def _optional_limit(value: object, key: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "null", "none")):
        return None
    return _integer(0)(value, key)


def _optional_cost(value: object, key: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "null", "none")):
        return None
    return _number(0.0)(value, key)


def _cpu(value: object, key: str) -> int:
    try:
        return to_millis(value, key)
    except GibbousError as error:
        raise ConfigError(str(error)) from None


def _bytes(value: object, key: str) -> int:
    try:
        return to_units(value, key)
    except GibbousError as error:
        raise ConfigError(str(error)) from None


def _pattern(value: object, key: str) -> UserPattern | None:
    if value is None or value == "":
        return None
    try:
        return compile_pattern(str(value))
    except PatternError as error:
        raise ConfigError(f"{key}: invalid RE2 regular expression {value!r}: {error}") from None


def _offerings(value: object, key: str) -> frozenset[PriceCategory]:
    try:
        return parse_offerings(str(value), key)
    except GibbousError as error:
        raise ConfigError(str(error)) from None


def _string_list(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        # `a,b`, and Helm's `{a,b}` and JSON's `["a","b"]` as --set writes them
        text = value.strip().strip("{}[]")
        items = [v.strip().strip('"').strip("'") for v in text.split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    elif value is None:
        items = []
    else:
        raise ConfigError(f"{key}: expected a list or a comma-separated string, got {value!r}")
    return tuple(items)


def _aws_ids(prefix: str) -> Callable[[object, str], tuple[str, ...]]:
    def parse(value: object, key: str) -> tuple[str, ...]:
        items = _string_list(value, key)
        bad = [item for item in items if not re.fullmatch(rf"{prefix}-[0-9a-f]{{8,17}}", item)]
        if bad:
            raise ConfigError(f"{key}: {bad[0]!r} is not an id of the form {prefix}-0123abcd")
        return items

    return parse


def _ami(value: object, key: str) -> str:
    text = str(value or "").strip()
    if text and not re.fullmatch(r"ami-[0-9a-f]{8,17}", text):
        raise ConfigError(f"{key}: {text!r} is not an AMI id of the form ami-0123abcd")
    return text


def _ssm_query(value: object, key: str) -> str:
    text = str(value or "").strip()
    if text and (not text.startswith("/") or text.count("%s") > 1 or "%" in text.replace("%s", "")):
        raise ConfigError(
            f"{key}: {text!r} is not an SSM parameter path with at most one %s "
            "(the Kubernetes version), e.g. /aws/service/bottlerocket/aws-k8s-%s/x86_64/latest/image_id"
        )
    return text


def _text(value: object, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise ConfigError(f"{key}: expected text, got {type(value).__name__}")
    return str(value)


_EBS_FIELDS = {
    "DeleteOnTermination": bool,
    "Encrypted": bool,
    "Iops": int,
    "KmsKeyId": str,
    "SnapshotId": str,
    "Throughput": int,
    "VolumeSize": int,
    "VolumeType": str,
}
_VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "gp3", "sc1", "st1")


def _block_device_mappings(value: object, key: str) -> tuple[Mapping[str, Any], ...]:
    """EC2's BlockDeviceMapping list (Luna's `--set-file aws.blockDeviceMappings=...json`),
    checked field by field, as RunInstances would refuse it."""
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ConfigError(f"{key}: not JSON: {error}") from None
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of block device mappings")
    out = []
    for index, mapping in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(mapping, Mapping) or not isinstance(mapping.get("DeviceName"), str):
            raise ConfigError(f"{where}: needs DeviceName (e.g. /dev/xvda)")
        unknown = set(mapping) - {"DeviceName", "Ebs", "NoDevice", "VirtualName"}
        if unknown:
            raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        ebs = mapping.get("Ebs")
        if ebs is not None:
            if not isinstance(ebs, Mapping):
                raise ConfigError(f"{where}.Ebs: expected a mapping")
            for field_name, field_value in ebs.items():
                wanted = _EBS_FIELDS.get(field_name)
                if wanted is None:
                    raise ConfigError(f"{where}.Ebs: unknown field {field_name!r}")
                if not isinstance(field_value, wanted) or (
                    wanted is int and isinstance(field_value, bool)
                ):
                    raise ConfigError(
                        f"{where}.Ebs.{field_name}: expected {wanted.__name__}, got {field_value!r}"
                    )
            if ebs.get("VolumeType", "gp3") not in _VOLUME_TYPES:
                raise ConfigError(
                    f"{where}.Ebs.VolumeType: {ebs['VolumeType']!r} is not one of {', '.join(_VOLUME_TYPES)}"
                )
            if "VolumeSize" in ebs and not 1 <= ebs["VolumeSize"] <= 65536:
                raise ConfigError(
                    f"{where}.Ebs.VolumeSize: {ebs['VolumeSize']} GiB is out of range"
                )
        out.append(dict(mapping))
    return tuple(out)


def _user_data_type(value: object, key: str) -> UserDataType:
    try:
        return UserDataType(str(value).strip())
    except ValueError:
        accepted = ", ".join(t.value for t in UserDataType)
        raise ConfigError(
            f"{key}: unknown user-data type {value!r} (accepted: {accepted})"
        ) from None


def _optional_bucket(value: object, key: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _integer(0, 4)(value, key)


def _optional_ratio(value: object, key: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _number(0.01, 1.0)(value, key)


def _label(value: object, key: str) -> tuple[str, str]:
    text = str(value).strip()
    name, sep, label_value = text.partition("=")
    if not sep or not name:
        raise ConfigError(
            f"{key}: invalid label {value!r} (accepted: key=value, e.g. elotl-luna=true)"
        )
    return name.strip(), label_value.strip()


def _choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def parse(value: object, key: str) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise ConfigError(f"{key}: invalid value {value!r} (accepted: {', '.join(options)})")
        return text

    return parse


def _architectures(value: object, key: str) -> tuple[str, ...]:
    items = _string_list(value, key)
    bad = [i for i in items if i not in ARCHITECTURES]
    if bad or not items:
        raise ConfigError(f"{key}: invalid architectures {value!r} (accepted: amd64, arm64)")
    return items


def _taints(value: object, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = _string_list(value, key)
    for item in items:
        body, _, effect = item.rpartition(":")
        if not body or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ConfigError(
                f"{key}: invalid taint {item!r} (accepted: key=value:Effect or key:Effect)"
            )
    return items


_CLUSTER_ID = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")


def _cluster_id(value: object, key: str) -> str:
    # It becomes a label value and a cloud tag, so it must be a valid label value.
    text = str(value).strip()
    if not _CLUSTER_ID.fullmatch(text):
        raise ConfigError(
            f"{key}: invalid cluster id {value!r} (accepted: 1-63 lower-case letters, digits, "
            "'-' or '.', starting and ending with a letter or digit)"
        )
    return text


def _percent(value: object, key: str) -> float:
    return _number(0.0, 100.0)(value, key)


@dataclass(frozen=True)
class Option:
    key: str  # Luna spelling; nested with dots
    attribute: str  # dotted path into Config
    parse: Callable[[object, str], Any]
    render: Callable[[Any], object]
    help: str


def _same(value: Any) -> object:
    return value


def _render_list(value: Any) -> object:
    return list(value) if value is not None else None


def _render_categories(value: Any) -> object:
    return ",".join(sorted(value, reverse=True))


def _render_pattern(value: Any) -> object:
    return value.source if value is not None else ""


OPTIONS: tuple[Option, ...] = (
    Option(
        "labels",
        "managed_label",
        _label,
        lambda v: f"{v[0]}={v[1]}",
        "label that marks pods Gibbous manages",
    ),
    Option("cloudProvider", "cloud", _choice(CLOUDS), _same, "cloud: aws, gcp, azure or oci"),
    Option(
        "region",
        "region",
        lambda v, k: str(v).strip(),
        _same,
        "region of the catalog (empty: the cloud's default)",
    ),
    Option(
        "zones", "zones", _string_list, _render_list, "zones nodes may be created in (empty: any)"
    ),
    Option(
        "architectures",
        "architectures",
        _architectures,
        _render_list,
        "CPU architectures allowed for pods that do not ask for one",
    ),
    Option(
        "defaultInstanceOfferings",
        "default_offerings",
        _offerings,
        _render_categories,
        "price categories for pods without node.elotl.co/instance-offerings",
    ),
    Option(
        "binSelectPodCpuThreshold",
        "bin_select_cpu_millis",
        _cpu,
        format_cpu,
        "a pod requesting at least this much CPU gets its own node (0 disables)",
    ),
    Option(
        "binSelectPodMemoryThreshold",
        "bin_select_memory_bytes",
        _bytes,
        format_bytes,
        "the same for memory (0 disables)",
    ),
    Option(
        "binSelectPodGPUThreshold",
        "bin_select_gpus",
        _integer(0),
        _same,
        "the same for nvidia.com/gpu, in slices (0 disables)",
    ),
    Option(
        "binPackingEnabled",
        "bin_packing_enabled",
        _bool,
        _same,
        "false: every pod gets its own node",
    ),
    Option(
        "binSelectNodeReuse",
        "bin_select_node_reuse",
        _bool,
        _same,
        "bin-select pods may use an existing bin-select node with room",
    ),
    Option(
        "binPackingNodeCpu",
        "bin_pack_node_cpu_millis",
        _cpu,
        format_cpu,
        "minimum vCPUs of a bin-pack node",
    ),
    Option(
        "binPackingNodeMemory",
        "bin_pack_node_memory_bytes",
        _bytes,
        format_bytes,
        "minimum memory of a bin-pack node",
    ),
    Option(
        "binPackingNodeGPU",
        "bin_pack_node_gpus",
        _integer(0),
        _same,
        "minimum GPUs (slices) of a bin-pack node",
    ),
    Option(
        "binPackingNodeTypeRegexp",
        "bin_pack_node_type_pattern",
        _pattern,
        _render_pattern,
        "RE2 expression bin-pack instance types must match",
    ),
    Option(
        "binPackingNodePricing",
        "bin_pack_node_pricing",
        _offerings,
        _render_categories,
        "price categories of bin-pack nodes",
    ),
    Option(
        "binPackingNodeStrategy",
        "bin_pack_node_strategy",
        _choice(("lowest-total-cost", "cheapest-node")),
        _same,
        "cheapest-node: Luna's rule; lowest-total-cost: the spec-meeting type that packs the pending pods cheapest",
    ),
    Option(
        "spotPriceRatioEstimate",
        "spot_price_ratio",
        _number(0.01, 1.0),
        _same,
        "spot $/hr = ratio x on-demand, when the catalog has no spot price",
    ),
    Option(
        "scaleUpTimeout",
        "scale_up_timeout_s",
        parse_duration,
        format_duration,
        "a launch not done by then is cancelled and its type backed off",
    ),
    Option(
        "registrationTimeout",
        "registration_timeout_s",
        parse_duration,
        format_duration,
        "an instance that never becomes a Node is terminated after this",
    ),
    Option(
        "backoffDuration",
        "backoff_s",
        parse_duration,
        format_duration,
        "how long a failed (type, category, zone) is avoided",
    ),
    Option(
        "clusterID",
        "cluster_id",
        _cluster_id,
        _same,
        "names this cluster on the instances Gibbous launches (restarts find them by it)",
    ),
    Option(
        "installName", "install_name", _text, _same, "names this install among several in a cluster"
    ),
    Option(
        "scaleUpBatchIdle",
        "scale_up_batch_idle_s",
        parse_duration,
        format_duration,
        "decide once no new pending pod arrived for this long",
    ),
    Option(
        "scaleUpBatchMax",
        "scale_up_batch_max_s",
        parse_duration,
        format_duration,
        "decide at the latest this long after the first new pending pod",
    ),
    Option(
        "orphanGracePeriod",
        "orphan_grace_s",
        parse_duration,
        format_duration,
        "an instance of ours with no Node and no launch is terminated after this",
    ),
    Option(
        "nvidiaGPUTimeSlices",
        "nvidia_gpu_time_slices",
        _integer(1, 64),
        _same,
        "NVIDIA time-slice replicas per physical GPU",
    ),
    Option(
        "placeNodeSelector",
        "place_node_selector",
        _bool,
        _same,
        "put pods' nodeSelector labels on the nodes created for them",
    ),
    Option(
        "pendingPodReasonRegexp",
        "pending_pod_reason_pattern",
        _pattern,
        _render_pattern,
        "only pending pods whose condition message matches trigger scale-up",
    ),
    Option(
        "clusterGPULimit",
        "cluster_gpu_limit",
        _optional_limit,
        _same,
        "most GPUs Gibbous nodes may have in total (null: no limit)",
    ),
    Option(
        "maxNodes",
        "max_nodes",
        _optional_limit,
        _same,
        "most nodes Gibbous may run (null: no limit)",
    ),
    Option(
        "maxClusterCostPerHour",
        "max_cost_per_hour",
        _optional_cost,
        _same,
        "most $/hr Gibbous nodes may cost in total (null: no limit)",
    ),
    Option(
        "nodeTTL",
        "node_ttl_s",
        parse_duration,
        format_duration,
        "replace nodes older than this (0: never)",
    ),
    Option(
        "webhookConfigPrefix",
        "webhook_config_prefix",
        lambda v, k: str(v),
        _same,
        "prefix of the webhook configuration names (sorts them after VPA's)",
    ),
    Option(
        "schedulerName",
        "scheduler_name",
        lambda v, k: str(v).strip(),
        _same,
        "schedulerName the webhook sets on managed pods (empty: leave as is)",
    ),
    Option(
        "provisioningGate",
        "provisioning_gate",
        _bool,
        _same,
        "gate bin-select pods until their node exists (needs Kubernetes >= 1.27)",
    ),
    Option(
        "reroutePodsOfStoppedScheduler",
        "reroute_stuck_pods",
        _bool,
        _same,
        "delete pods a controller owns that wait on a stopped Gibbous scheduler, so they are "
        "recreated for the default scheduler (pods without an owner are never deleted)",
    ),
    Option(
        "spotTolerations",
        "spot_tolerations",
        _taints,
        _render_list,
        "taints spot-allowed pods get tolerations for (default: Gibbous's and the cloud's spot taint)",
    ),
    Option(
        "managedNamespaces",
        "managed_namespaces",
        _string_list,
        _render_list,
        'namespaces whose pods are all managed; "*" = every namespace the webhook is called for',
    ),
    Option(
        "estimateOnlyNamespaces",
        "estimate_only_namespaces",
        _string_list,
        _render_list,
        "namespaces whose managed pods get the nodecostestimate gate",
    ),
    Option(
        "manageHighUtilization.enabled", "hot_node.enabled", _bool, _same, "hot-node mitigation"
    ),
    Option(
        "manageHighUtilization.loopPeriod",
        "hot_node.loop_period_s",
        parse_duration,
        format_duration,
        "how often node metrics are read",
    ),
    Option(
        "manageHighUtilization.yellowCPU",
        "hot_node.yellow_cpu",
        _percent,
        _same,
        "CPU % at which a node is tainted warm",
    ),
    Option(
        "manageHighUtilization.yellowMemory",
        "hot_node.yellow_memory",
        _percent,
        _same,
        "memory % at which a node is tainted warm",
    ),
    Option(
        "manageHighUtilization.redCPU",
        "hot_node.red_cpu",
        _percent,
        _same,
        "CPU % at which a node is tainted hot and one pod evicted",
    ),
    Option(
        "manageHighUtilization.redMemory",
        "hot_node.red_memory",
        _percent,
        _same,
        "memory % at which a node is tainted hot and one pod evicted",
    ),
    Option(
        "manageHighUtilization.greenCPU",
        "hot_node.green_cpu",
        _percent,
        _same,
        "below this CPU % (and green memory) the taint is removed",
    ),
    Option(
        "manageHighUtilization.greenMemory",
        "hot_node.green_memory",
        _percent,
        _same,
        "below this memory % (and green CPU) the taint is removed",
    ),
    Option(
        "scaleDown.enabled",
        "scale_down.enabled",
        _bool,
        _same,
        "remove nodes Gibbous created when they are not needed",
    ),
    Option(
        "scaleDown.unneededTime",
        "scale_down.unneeded_time_s",
        parse_duration,
        format_duration,
        "how long a node must be unneeded before removal",
    ),
    Option(
        "scaleDown.binPackNodeUtilizationThreshold",
        "scale_down.bin_pack_utilization_threshold",
        _number(0.0, 1.0),
        _same,
        "bin-pack nodes below this request utilization are candidates (0.0: only empty ones)",
    ),
    Option(
        "scaleDown.delayAfterAdd",
        "scale_down.delay_after_add_s",
        parse_duration,
        format_duration,
        "a new node is not removed before this age",
    ),
    Option(
        "scaleDown.maxDrainingNodes",
        "scale_down.max_draining_nodes",
        _integer(1),
        _same,
        "most nodes drained at once",
    ),
    Option(
        "scaleDown.maxDrainingPercent",
        "scale_down.max_draining_percent",
        _percent,
        _same,
        "most nodes drained at once, as % of Gibbous nodes",
    ),
    Option(
        "nodeOverhead.reservation",
        "node_overhead.reservation",
        _choice(("tiered", "none")),
        _same,
        "tiered: kube/system reservation by the GKE/AKS formula",
    ),
    Option(
        "nodeOverhead.cpu",
        "node_overhead.cpu_millis",
        _cpu,
        format_cpu,
        "extra CPU reserved on every node",
    ),
    Option(
        "nodeOverhead.memory",
        "node_overhead.memory_bytes",
        _bytes,
        format_bytes,
        "extra memory reserved on every node",
    ),
    Option(
        "nodeOverhead.evictionMemory",
        "node_overhead.eviction_memory_bytes",
        _bytes,
        format_bytes,
        "kubelet hard eviction threshold",
    ),
    Option(
        "nodeOverhead.daemonSetCpu",
        "node_overhead.daemonset_cpu_millis",
        _cpu,
        format_cpu,
        "CPU requested by DaemonSet pods on every node",
    ),
    Option(
        "nodeOverhead.daemonSetMemory",
        "node_overhead.daemonset_memory_bytes",
        _bytes,
        format_bytes,
        "memory requested by DaemonSet pods on every node",
    ),
    Option(
        "nodeOverhead.maxPods",
        "node_overhead.max_pods",
        _integer(1, 10000),
        _same,
        "pods per node when the catalog does not say",
    ),
)

OPTIONS += (
    Option(
        "aws.clusterName",
        "aws.cluster_name",
        _text,
        _same,
        "EKS cluster name for discovery (empty: clusterID)",
    ),
    Option(
        "aws.subnets",
        "aws.subnets",
        _aws_ids("subnet"),
        _render_list,
        "subnets for nodes (empty on EKS: the cluster's tagged subnets)",
    ),
    Option(
        "aws.securityGroups",
        "aws.security_groups",
        _aws_ids("sg"),
        _render_list,
        "security groups for nodes (empty on EKS: the cluster security group)",
    ),
    Option(
        "aws.nodeInstanceProfile",
        "aws.node_instance_profile",
        _text,
        _same,
        "instance profile name for nodes (without a launch template: required)",
    ),
    Option(
        "aws.amiIdGeneric",
        "aws.ami_id_generic",
        _ami,
        _same,
        "AMI for x86-64 nodes (empty: the EKS-optimized AMI from SSM)",
    ),
    Option(
        "aws.amiIdGenericArm",
        "aws.ami_id_generic_arm",
        _ami,
        _same,
        "AMI for arm64 nodes (empty: from SSM)",
    ),
    Option(
        "aws.amiIdGpu",
        "aws.ami_id_gpu",
        _ami,
        _same,
        "AMI for GPU nodes (empty: the NVIDIA variant from SSM)",
    ),
    Option(
        "aws.imageSsmQueryGeneric",
        "aws.image_ssm_query_generic",
        _ssm_query,
        _same,
        "SSM parameter of the x86-64 AMI; %s = Kubernetes version",
    ),
    Option(
        "aws.imageSsmQueryGenericArm",
        "aws.image_ssm_query_generic_arm",
        _ssm_query,
        _same,
        "SSM parameter of the arm64 AMI",
    ),
    Option(
        "aws.imageSsmQueryGpu",
        "aws.image_ssm_query_gpu",
        _ssm_query,
        _same,
        "SSM parameter of the GPU AMI",
    ),
    Option(
        "aws.isBottlerocketImage",
        "aws.is_bottlerocket_image",
        _bool,
        _same,
        "nodes run Bottlerocket (user data is TOML; AMIs from Bottlerocket's SSM parameters)",
    ),
    Option(
        "aws.userDataType",
        "aws.user_data_type",
        _user_data_type,
        str,
        "AL2023, Bottlerocket, AL2, Template (aws.userData is a Go template over .Labels, .Taints, .MaxPods) or None",
    ),
    Option(
        "aws.userData",
        "aws.user_data",
        _text,
        _same,
        "the operator's user data (kept), or the template",
    ),
    Option(
        "aws.blockDeviceMappings",
        "aws.block_device_mappings",
        _block_device_mappings,
        lambda v: [dict(m) for m in v],
        "EC2 block device mappings (JSON list)",
    ),
    Option(
        "aws.useSpotAdvisor",
        "aws.use_spot_advisor",
        _bool,
        _same,
        "spot prices and interruption buckets from Spot Instance Advisor data (aws.spotAdvisorFile)",
    ),
    Option(
        "aws.spotAdvisorFile",
        "aws.spot_advisor_file",
        _text,
        _same,
        "a copy of the Spot Instance Advisor's public JSON (spot-advisor-data.json)",
    ),
    Option(
        "aws.maxSpotInterruptBucket",
        "aws.max_spot_interrupt_bucket",
        _optional_bucket,
        _same,
        "with the advisor: highest interruption bucket allowed, 0 (<5%) to 4 (>20%)",
    ),
    Option(
        "aws.maxSpotPriceRatio",
        "aws.max_spot_price_ratio",
        _optional_ratio,
        _same,
        "with the advisor: highest spot/on-demand price ratio allowed",
    ),
)

OPTIONS += (
    Option(
        "gcp.project",
        "gcp.project",
        _text,
        _same,
        "GCP project of the GKE cluster (empty: the credentials' project)",
    ),
    Option(
        "gcp.location",
        "gcp.location",
        _text,
        _same,
        "the GKE cluster's location, a region or a zone (empty: region)",
    ),
    Option(
        "gcp.clusterName", "gcp.cluster_name", _text, _same, "GKE cluster name (empty: clusterID)"
    ),
    Option(
        "gcp.diskSizeGb",
        "gcp.disk_size_gb",
        _integer(10, 65536),
        _same,
        "boot disk size of GKE nodes, GB",
    ),
    Option(
        "gcp.diskType",
        "gcp.disk_type",
        _choice(("pd-balanced", "pd-standard", "pd-ssd", "hyperdisk-balanced")),
        _same,
        "boot disk type of GKE nodes",
    ),
    Option(
        "gcp.serviceAccount",
        "gcp.service_account",
        _text,
        _same,
        "service account of GKE nodes (empty: Compute Engine's default)",
    ),
    Option(
        "gcp.imageStreaming",
        "gcp.image_streaming",
        _bool,
        _same,
        "GKE image streaming (gcfsConfig) on the node pools Gibbous creates",
    ),
    Option(
        "gcp.gpuDriverVersion",
        "gcp.gpu_driver_version",
        _choice(("default", "latest", "disabled")),
        _same,
        "NVIDIA driver GKE installs on GPU nodes (disabled: install it yourself)",
    ),
    Option(
        "gcp.operationLimit",
        "gcp.operation_limit",
        _integer(1, 20),
        _same,
        "node-pool operations Gibbous runs at once on the cluster",
    ),
)

OPTIONS += (
    Option(
        "azure.subscriptionId",
        "azure.subscription_id",
        _text,
        _same,
        "Azure subscription of the AKS cluster (empty: AZURE_SUBSCRIPTION_ID)",
    ),
    Option(
        "azure.resourceGroup",
        "azure.resource_group",
        _text,
        _same,
        "the AKS cluster's resource group",
    ),
    Option(
        "azure.clusterName",
        "azure.cluster_name",
        _text,
        _same,
        "AKS cluster name (empty: clusterID)",
    ),
    Option(
        "azure.osDiskSizeGB",
        "azure.os_disk_size_gb",
        _integer(30, 2048),
        _same,
        "OS disk size of AKS nodes, GB",
    ),
    Option(
        "azure.gpuDriver",
        "azure.gpu_driver",
        _choice(("install", "none")),
        _same,
        "whether AKS installs the NVIDIA driver on GPU pools (none: install it yourself, e.g. with the GPU Operator)",
    ),
    Option(
        "azure.artifactStreaming",
        "azure.artifact_streaming",
        _bool,
        _same,
        "AKS Artifact Streaming on the agent pools Gibbous creates",
    ),
    Option(
        "azure.vnetSubnetId",
        "azure.vnet_subnet_id",
        _text,
        _same,
        "subnet resource id for node pools (empty: the cluster's)",
    ),
    Option(
        "azure.maxPods",
        "azure.max_pods",
        _integer(0, 250),
        _same,
        "pods per node (0: AKS's default)",
    ),
)

OPTIONS += (
    Option(
        "oci.compartmentId",
        "oci.compartment_id",
        _text,
        _same,
        "OCID of the OKE cluster's compartment",
    ),
    Option("oci.clusterId", "oci.cluster_id", _text, _same, "OCID of the OKE cluster"),
    Option("oci.subnetId", "oci.subnet_id", _text, _same, "OCID of the node subnet"),
    Option(
        "oci.availabilityDomains",
        "oci.availability_domains",
        _string_list,
        _render_list,
        "availability domains for nodes (empty: all of the region's)",
    ),
    Option(
        "oci.imageId",
        "oci.image_id",
        _text,
        _same,
        "node image OCID (empty: the OKE image for the cluster's version, architecture and GPU)",
    ),
    Option(
        "oci.bootVolumeSizeGb",
        "oci.boot_volume_size_gb",
        _integer(50, 32768),
        _same,
        "boot volume size of OKE nodes, GB",
    ),
    Option("oci.sshPublicKey", "oci.ssh_public_key", _text, _same, "SSH public key for the nodes"),
)

_BY_KEY = {o.key: o for o in OPTIONS}
# Top-level keys of a Helm values file (Luna's chart or Gibbous's, charts/gibbous) that
# set up the install rather than Gibbous: a values file loads as it is, and these are
# named as not applicable. The chart leaves exactly these out of the configuration it
# renders (a test keeps the two lists equal).
INSTALL_KEYS: Mapping[str, str] = {
    "image": "the image the chart runs",
    "imagePullSecretName": "Luna's pull secret for the image",
    "imagePullSecrets": "pull secrets for the image",
    "manager": "Luna's manager pod settings (envFrom, env: the autoscaler's environment)",
    "nameOverride": "the chart's object names",
    "fullnameOverride": "the chart's object names",
    "priorityClassName": "the priority class of Gibbous's pods",
    "nodeSelector": "where Gibbous's pods run",
    "tolerations": "where Gibbous's pods run",
    "webhook": "the webhook's replicas, resources and TLS",
    "extender": "the extender's replicas and resources",
    "scheduler": "the secondary scheduler's replicas, image and resources",
    "autoscaler": "the autoscaler's provider, replicas, resources and service account",
}
# Spellings the posts use that differ from ours.
_ALIASES = {"NodeTTL": "nodeTTL"}
_SECTIONS = {o.key.split(".")[0] for o in OPTIONS if "." in o.key}


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    """`{"scaleDown": {"enabled": true}}` -> `{"scaleDown.enabled": true}`."""
    out: dict[str, object] = {}
    for raw_key, value in document.items():
        key = f"{prefix}{raw_key}"
        if isinstance(value, Mapping) and key in _SECTIONS:
            out.update(flatten(value, f"{key}."))
        else:
            out[key] = value
    return out


def install_settings(document: Mapping[str, Any]) -> list[str]:
    """The keys of a values file that configure the Helm install, not Gibbous."""
    return [key for key in document if key in INSTALL_KEYS]


def _unknown(key: str) -> ConfigError:
    by_lower = {k.lower(): k for k in _BY_KEY}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = (
        f"; did you mean {by_lower[close[0]]!r}?"
        if close
        else "; see `gibbous config --help` for the keys"
    )
    return ConfigError(f"unknown configuration key {key!r}{hint}")


def _set_path(config: Config, path: str, value: object) -> Config:
    head, _, rest = path.partition(".")
    changes: dict[str, Any] = {head: value}
    if rest:
        changes = {head: replace(getattr(config, head), **{rest: value})}
    return replace(config, **changes)


def build_config(
    document: Mapping[str, Any] | None = None,
    *,
    environment: Mapping[str, str] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Defaults < YAML document < GIBBOUS_* environment < --set overrides."""
    values: dict[str, object] = {}
    problems: list[str] = []

    def accept(key: str, value: object) -> None:
        key = _ALIASES.get(key, key)
        if key not in _BY_KEY:
            problems.append(str(_unknown(key)))
            return
        values[key] = value

    if document is not None:
        if not isinstance(document, Mapping):
            raise ConfigError("configuration file must be a YAML mapping of option names to values")
        options = {k: v for k, v in document.items() if k not in INSTALL_KEYS}
        for key, value in flatten(options).items():
            # A null is "not set", as in Helm values (P07's `clusterID:`).
            if value is not None:
                accept(key, value)
    for name, value in sorted((environment or {}).items()):
        if name.startswith("GIBBOUS_") and name not in ("GIBBOUS_CONFIG",):
            accept(name[len("GIBBOUS_") :].replace("__", "."), value)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            problems.append(f"--set {item!r}: expected key=value")
            continue
        accept(key.strip(), value)

    config = Config()
    for key, raw in values.items():
        option = _BY_KEY[key]
        try:
            config = _set_path(config, option.attribute, option.parse(raw, key))
        except ConfigError as error:
            problems.append(str(error))
    problems.extend(_cross_checks(config))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return config


def _cross_checks(config: Config) -> list[str]:
    out = []
    hot = config.hot_node
    if not hot.green_cpu <= hot.yellow_cpu <= hot.red_cpu:
        out.append("manageHighUtilization: need greenCPU <= yellowCPU <= redCPU")
    if not hot.green_memory <= hot.yellow_memory <= hot.red_memory:
        out.append("manageHighUtilization: need greenMemory <= yellowMemory <= redMemory")
    if config.hot_node.loop_period_s <= 0:
        out.append("manageHighUtilization.loopPeriod must be > 0")
    if config.scale_up_timeout_s <= 0:
        out.append("scaleUpTimeout must be > 0")
    if config.scale_up_batch_max_s < config.scale_up_batch_idle_s:
        out.append("scaleUpBatchMax must be >= scaleUpBatchIdle")
    aws = config.aws
    try:
        check_user_data(aws.effective_user_data_type, aws.user_data)
    except GibbousError as error:
        out.append(str(error))
    if aws.use_spot_advisor and not aws.spot_advisor_file:
        out.append(
            "aws.useSpotAdvisor needs aws.spotAdvisorFile: a copy of the Spot Instance Advisor's "
            "public JSON (Gibbous does not download it)"
        )
    return out


def _value(config: Config, option: Option) -> object:
    value: Any = config
    for part in option.attribute.split("."):
        value = getattr(value, part)
    return option.render(value)


def render_config(config: Config) -> dict[str, object]:
    """Every key with its value as it would be written in YAML."""
    return {option.key: _value(config, option) for option in OPTIONS}


def describe_options() -> list[tuple[str, object, str]]:
    """(key, default as written in YAML, help) for --help and the docs."""
    defaults = Config()
    return [(option.key, _value(defaults, option), option.help) for option in OPTIONS]


def config_fields() -> list[str]:
    return [f.name for f in fields(Config)]


def node_label_selector(config: Config) -> str:
    key, value = config.managed_label
    return f"{key}={value}"


def default_managed_label() -> str:
    return keys.DEFAULT_MANAGED_LABEL

"""Gibbous's configuration as the rest of the code reads it: one typed, frozen `Config`.

Its top-level fields are the options in `options/core.py`; each section (`hot_node`,
`scale_down`, `consolidation`, `node_overhead`, `logging`, `aws`, `gcp`, `azure`, `oci`) is
the dataclass next to that section's options. `loader.build_config` makes one from a values document, the
environment and `--set` items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gibbous.core import keys
from gibbous.core.grammar.pattern import UserPattern
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.podmodel.pods import annotations_of, labels_of
from gibbous.core.settings.options.aws import AwsConfig
from gibbous.core.settings.options.azure import AzureConfig
from gibbous.core.settings.options.consolidation import ConsolidationConfig
from gibbous.core.settings.options.gcp import GcpConfig
from gibbous.core.settings.options.lifecycle import HotNodeConfig, ScaleDownConfig
from gibbous.core.settings.options.logs import LoggingConfig
from gibbous.core.settings.options.oci import OciConfig
from gibbous.core.settings.options.overhead import NodeOverheadConfig
from gibbous.core.settings.region import choose_region


@dataclass(frozen=True)
class Config:
    # Any one of them marks a pod as managed (Luna's `labels` list).
    managed_labels: tuple[tuple[str, str], ...] = (("elotl-luna", "true"),)
    # Or any one of these annotations (Luna's `podAnnotations`).
    managed_annotations: tuple[tuple[str, str], ...] = ()
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
    bin_pack_node_min_pods: int = 0  # 0: no minimum
    bin_pack_node_type_pattern: UserPattern | None = None
    bin_pack_node_pricing: frozenset[PriceCategory] = frozenset({PriceCategory.ON_DEMAND})
    bin_pack_node_strategy: str = "lowest-total-cost"

    spot_price_ratio: float = 0.5
    scale_up_timeout_s: float = 600.0
    registration_timeout_s: float = 900.0
    backoff_s: float = 900.0
    cluster_id: str = "gibbous"
    # With clusterID, names the install that owns a node (the chart passes its release).
    install_name: str = ""
    scale_up_batch_idle_s: float = 1.0
    scale_up_batch_max_s: float = 10.0
    orphan_grace_s: float = 600.0
    nvidia_gpu_time_slices: int = 1
    place_node_selector: bool = False
    pending_pod_reason_pattern: UserPattern | None = None  # Luna's: every pending pod counts
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
    consolidation: ConsolidationConfig = field(default_factory=ConsolidationConfig)
    node_overhead: NodeOverheadConfig = field(default_factory=NodeOverheadConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    gcp: GcpConfig = field(default_factory=GcpConfig)
    azure: AzureConfig = field(default_factory=AzureConfig)
    oci: OciConfig = field(default_factory=OciConfig)

    @property
    def designation(self) -> PodDesignation:
        return PodDesignation(self.managed_labels, self.managed_annotations)

    @property
    def managed_label(self) -> tuple[str, str]:
        """The first of `labels`: the one the webhook puts on the pods of opted-in
        namespaces (any one would do; the first is the one the operator wrote first)."""
        return self.managed_labels[0]

    @property
    def effective_region(self) -> str:
        """The region option, else a GKE cluster's location, else the cloud's default; the
        shells put the cloud's environment (AWS_REGION, ...) into `region` at start."""
        return choose_region(self.cloud, self.region, self.gcp.location, {}).region

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


def config_fields() -> list[str]:
    return [f.name for f in fields(Config)]


@dataclass(frozen=True)
class PodDesignation:
    """What marks a pod as managed (Luna's "pod designation"): any one of `labels`, or of
    `annotations` (Luna's `podAnnotations`)."""

    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...] = ()

    def marks(self, pod: Mapping[str, Any]) -> bool:
        pod_labels = labels_of(pod)
        if any(pod_labels.get(key) == value for key, value in self.labels):
            return True
        if not self.annotations:
            return False
        pod_annotations = annotations_of(pod)
        return any(pod_annotations.get(key) == value for key, value in self.annotations)

    def describe(self) -> str:
        """`label a=b or c=d or annotation e=f`, for reasons and notes."""
        named = [f"label {k}={v}" for k, v in self.labels]
        named += [f"annotation {k}={v}" for k, v in self.annotations]
        return " or ".join(named)

"""Luna's `gcp:` values: the GKE cluster and how its node pools' nodes are made."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import BOOLEAN, TEXT, choice, whole_number


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
    # Pools get GKE's metadata server (workloadMetadataConfig GKE_METADATA), which needs
    # Workload Identity on the cluster; their nodes carry iam.gke.io/gke-metadata-server-enabled.
    workload_identity: bool = False
    operation_limit: int = 3  # node-pool operations Gibbous runs at once on the cluster


GCP = Section(
    "GCP",
    (
        Option(
            key="gcp.project",
            attribute="gcp.project",
            value_type=TEXT,
            help="GCP project of the GKE cluster (empty: the credentials' project)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="gcp.location",
            attribute="gcp.location",
            value_type=TEXT,
            help="the GKE cluster's location, a region or a zone (empty: region)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="gcp.clusterName",
            attribute="gcp.cluster_name",
            value_type=TEXT,
            help="GKE cluster name (empty: clusterID)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="gcp.diskSizeGb",
            attribute="gcp.disk_size_gb",
            value_type=whole_number(10, 65536),
            help="boot disk size of GKE nodes, GB",
            luna="gcp.diskSizeGb",
            since="0.1.0",
        ),
        Option(
            key="gcp.diskType",
            attribute="gcp.disk_type",
            value_type=choice(("pd-balanced", "pd-standard", "pd-ssd", "hyperdisk-balanced")),
            help="boot disk type of GKE nodes",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="gcp.serviceAccount",
            attribute="gcp.service_account",
            value_type=TEXT,
            help="service account of GKE nodes (empty: Compute Engine's default)",
            luna="gcp.nodeServiceAccount",
            since="0.1.0",
        ),
        Option(
            key="gcp.imageStreaming",
            attribute="gcp.image_streaming",
            value_type=BOOLEAN,
            help="GKE image streaming (gcfsConfig) on the node pools Gibbous creates",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="gcp.gpuDriverVersion",
            attribute="gcp.gpu_driver_version",
            value_type=choice(("default", "latest", "disabled")),
            help="NVIDIA driver GKE installs on GPU nodes (disabled: install it yourself)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="gcp.workloadIdentity",
            attribute="gcp.workload_identity",
            value_type=BOOLEAN,
            help="node pools Gibbous creates run GKE's metadata server (workloadMetadataConfig "
            "GKE_METADATA; the cluster must have Workload Identity), so their nodes carry "
            "iam.gke.io/gke-metadata-server-enabled=true",
            luna=None,
            since="0.2.0",
        ),
        Option(
            key="gcp.operationLimit",
            attribute="gcp.operation_limit",
            value_type=whole_number(1, 20),
            help="node-pool operations Gibbous runs at once on the cluster",
            luna=None,
            since="0.1.0",
        ),
    ),
)

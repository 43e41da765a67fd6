"""Luna's `azure:` values: the AKS cluster and how its agent pools' nodes are made."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import BOOLEAN, TEXT, choice, whole_number


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


AZURE = Section(
    "Azure",
    (
        Option(
            key="azure.subscriptionId",
            attribute="azure.subscription_id",
            value_type=TEXT,
            help="Azure subscription of the AKS cluster (empty: AZURE_SUBSCRIPTION_ID)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="azure.resourceGroup",
            attribute="azure.resource_group",
            value_type=TEXT,
            help="the AKS cluster's resource group",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="azure.clusterName",
            attribute="azure.cluster_name",
            value_type=TEXT,
            help="AKS cluster name (empty: clusterID)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="azure.osDiskSizeGB",
            attribute="azure.os_disk_size_gb",
            value_type=whole_number(30, 2048),
            help="OS disk size of AKS nodes, GB",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="azure.gpuDriver",
            attribute="azure.gpu_driver",
            value_type=choice(("install", "none")),
            help="whether AKS installs the NVIDIA driver on GPU pools (none: install it yourself, e.g. with the GPU Operator)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="azure.artifactStreaming",
            attribute="azure.artifact_streaming",
            value_type=BOOLEAN,
            help="AKS Artifact Streaming on the agent pools Gibbous creates",
            luna="azure.enableArtifactStreaming",
            since="0.1.0",
        ),
        Option(
            key="azure.vnetSubnetId",
            attribute="azure.vnet_subnet_id",
            value_type=TEXT,
            help="subnet resource id for node pools (empty: the cluster's)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="azure.maxPods",
            attribute="azure.max_pods",
            value_type=whole_number(0, 250),
            help="pods per node (0: AKS's default)",
            luna=None,
            since="0.1.0",
        ),
    ),
)

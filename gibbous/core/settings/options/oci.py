"""Luna's `oci:` values: the OKE cluster and how its node pools' nodes are made."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import STRING_LIST, TEXT, TRIMMED_TEXT, whole_number


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
    # VCN-native pod networking only (the cluster's clusterPodNetworkOptions say which):
    pod_subnet_ids: tuple[str, ...] = ()  # empty: the node subnet
    max_pods_per_node: int = 0  # 0: OKE's default, 31
    # Oracle's public price list (the cost estimator's API), read by the live catalog.
    price_list_url: str = (
        "https://apexapps.oracle.com/pls/apex/cetools/api/v1/products/?currencyCode=USD"
    )


OCI = Section(
    "OCI",
    (
        Option(
            key="oci.compartmentId",
            attribute="oci.compartment_id",
            value_type=TEXT,
            help="OCID of the OKE cluster's compartment",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.clusterId",
            attribute="oci.cluster_id",
            value_type=TEXT,
            help="OCID of the OKE cluster",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.subnetId",
            attribute="oci.subnet_id",
            value_type=TEXT,
            help="OCID of the node subnet",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.availabilityDomains",
            attribute="oci.availability_domains",
            value_type=STRING_LIST,
            help="availability domains for nodes (empty: all of the region's)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.imageId",
            attribute="oci.image_id",
            value_type=TEXT,
            help="node image OCID (empty: the OKE image for the cluster's version, architecture and GPU)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.bootVolumeSizeGb",
            attribute="oci.boot_volume_size_gb",
            value_type=whole_number(50, 32768),
            help="boot volume size of OKE nodes, GB",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.podSubnetIds",
            attribute="oci.pod_subnet_ids",
            value_type=STRING_LIST,
            help="pod subnet OCIDs on a cluster with VCN-native pod networking (empty: the node subnet)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.maxPodsPerNode",
            attribute="oci.max_pods_per_node",
            value_type=whole_number(0, 110),
            help="pods per node with VCN-native pod networking (0: OKE's default, 31)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.sshPublicKey",
            attribute="oci.ssh_public_key",
            value_type=TEXT,
            help="SSH public key for the nodes",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="oci.priceListUrl",
            attribute="oci.price_list_url",
            value_type=TRIMMED_TEXT,
            help="where the autoscaler reads Oracle's public price list for its live catalog "
            "(every 6 hours; unreachable: the kept or built-in prices, with a warning)",
            luna=None,
            since="0.1.0",
        ),
    ),
)

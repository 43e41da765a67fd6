"""Builders for test objects, Karpenter-style: make_pod(cpu="500m", gpus=1, ...)."""

from __future__ import annotations

from typing import Any

from gibbous.catalogs import load_catalog
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.selection import Offer, build_offers
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config


def make_pod(
    name: str = "pod",
    *,
    namespace: str = "default",
    cpu: str | None = "100m",
    memory: str | None = "128Mi",
    gpus: int = 0,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    uid: str | None = None,
    managed: bool = True,
) -> dict[str, Any]:
    requests: dict[str, Any] = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    resources: dict[str, Any] = {"requests": requests}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    pod_labels = dict(labels or {})
    if managed:
        pod_labels.setdefault("elotl-luna", "true")
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "busybox", "resources": resources}]
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "labels": pod_labels,
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def api_pod(name: str, **options: Any) -> dict[str, Any]:
    """`make_pod` as a body for create_namespaced_pod: the server sets namespace and uid."""
    pod = make_pod(name, **options)
    del pod["metadata"]["namespace"], pod["metadata"]["uid"]
    return pod


def config(**values: object) -> Config:
    return build_config(dict(values))


def catalog(cloud: str = "aws") -> list[InstanceType]:
    region = {"aws": "us-west-2", "gcp": "us-central1", "azure": "eastus", "oci": "us-ashburn-1"}[
        cloud
    ]
    return load_catalog(None, cloud, region)


def offers(cloud: str = "aws", cfg: Config | None = None) -> list[Offer]:
    return build_offers(catalog(cloud), cfg or config(cloudProvider=cloud))


def csv_catalog(*rows: str) -> str:
    header = (
        "cloud,region,instance_type,vcpu,memory_gib,gpu_count,gpu_sku,arch,"
        "on_demand_usd_per_hour,spot_usd_per_hour"
    )
    return "\n".join([header, *rows]) + "\n"


def spot_post_ray_head() -> dict[str, Any]:
    """P10 (Fun with Spot): the single-node Ray cluster's head: 2 GPUs of T4/P4/L4, spot or
    on-demand, at most 2 GPUs, under $4.75/hr, 27 CPU and 27Gi."""
    return make_pod(
        "ray-head",
        cpu="27",
        memory="27Gi",
        gpus=2,
        annotations={
            keys.INSTANCE_GPU_SKUS: "T4,P4,L4",
            keys.INSTANCE_OFFERINGS: "spot,on-demand",
            keys.INSTANCE_MAX_GPUS: "2",
            keys.INSTANCE_MAX_COST: "4.75",
        },
    )

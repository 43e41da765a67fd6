"""Every pod or node of a cluster read in one list, for one-shot commands (`gibbous explain`).

A list of 50,000 pods is about 235 MB of JSON, most of it fields no rule reads
(managedFields, env, volumes, probes, images). Decoding it whole into dicts, then reading
each pod's facts, took several times as long as `kubectl get pods -A -o json` of the same
cluster (bench/README.md, "Observability"). Here the list is decoded typed (msgspec), keeping
the fields of `gibbous.core.podmodel.slim`'s records (what the autoscaler's caches hold,
so the rules see what they see in the autoscaler) and skipping the rest without building
objects for it. A list the typed decoder refuses (a field of an unexpected JSON type,
which the API server never sends) is decoded whole instead: the rules then say what is
wrong with the object, as they do in the autoscaler.

The list is asked for at `resourceVersion=0`: the API server answers it from its watch
cache, as it does an informer's first list, without reading etcd; for a command that shows
a moment of the cluster, a cache a moment behind is as good.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import UNSET, UnsetType


class _Metadata(msgspec.Struct, gc=False):
    name: Any = UNSET
    namespace: Any = UNSET
    uid: Any = UNSET
    resourceVersion: Any = UNSET
    generateName: Any = UNSET
    creationTimestamp: Any = UNSET
    deletionTimestamp: Any = UNSET
    deletionGracePeriodSeconds: Any = UNSET
    labels: Any = UNSET
    annotations: Any = UNSET
    ownerReferences: Any = UNSET


class _Container(msgspec.Struct, gc=False):
    name: Any = UNSET
    resources: Any = UNSET
    restartPolicy: Any = UNSET


class _PodSpec(msgspec.Struct, gc=False):
    nodeName: Any = UNSET
    schedulerName: Any = UNSET
    priority: Any = UNSET
    nodeSelector: Any = UNSET
    affinity: Any = UNSET
    tolerations: Any = UNSET
    schedulingGates: Any = UNSET
    topologySpreadConstraints: Any = UNSET
    overhead: Any = UNSET
    resources: Any = UNSET
    runtimeClassName: Any = UNSET
    resourceClaims: Any = UNSET
    containers: list[_Container] | UnsetType | None = UNSET
    initContainers: list[_Container] | UnsetType | None = UNSET


class _PodStatus(msgspec.Struct, gc=False):
    phase: Any = UNSET
    nominatedNodeName: Any = UNSET
    conditions: Any = UNSET


class _Pod(msgspec.Struct, gc=False):
    metadata: _Metadata | UnsetType | None = UNSET
    spec: _PodSpec | UnsetType | None = UNSET
    status: _PodStatus | UnsetType | None = UNSET


class _NodeSpec(msgspec.Struct, gc=False):
    providerID: Any = UNSET
    taints: Any = UNSET
    unschedulable: Any = UNSET


class _NodeStatus(msgspec.Struct, gc=False):
    allocatable: Any = UNSET
    capacity: Any = UNSET
    conditions: Any = UNSET


class _Node(msgspec.Struct, gc=False):
    metadata: _Metadata | UnsetType | None = UNSET
    spec: _NodeSpec | UnsetType | None = UNSET
    status: _NodeStatus | UnsetType | None = UNSET


class _PodList(msgspec.Struct, gc=False):
    items: list[_Pod] | None = None


class _NodeList(msgspec.Struct, gc=False):
    items: list[_Node] | None = None


_POD_LIST = msgspec.json.Decoder(_PodList)
_NODE_LIST = msgspec.json.Decoder(_NodeList)


def _decoded(decoder: msgspec.json.Decoder[Any], body: bytes) -> list[dict[str, Any]]:
    try:
        items = decoder.decode(body).items
    except msgspec.ValidationError:
        whole = orjson.loads(body)
        found = whole.get("items") if isinstance(whole, dict) else None
        return [item for item in found or () if isinstance(item, dict)]
    # Fields the object did not have stay absent (UNSET is left out), as in the API's JSON.
    records: list[dict[str, Any]] = msgspec.to_builtins(items or [])
    return records


def decode_pods(body: bytes) -> list[dict[str, Any]]:
    """The pods of a PodList's JSON, each with the fields of its slim record."""
    return _decoded(_POD_LIST, body)


def decode_nodes(body: bytes) -> list[dict[str, Any]]:
    """The nodes of a NodeList's JSON, each with the fields of its slim record."""
    return _decoded(_NODE_LIST, body)


def list_pods(core: Any, field_selector: str = "") -> list[dict[str, Any]]:
    """Every pod (that the field selector selects), from the API server's watch cache."""
    response = core.list_pod_for_all_namespaces(
        field_selector=field_selector, resource_version="0", _preload_content=False
    )
    return decode_pods(response.data)


def list_nodes(core: Any) -> list[dict[str, Any]]:
    """Every node, from the API server's watch cache."""
    response = core.list_node(resource_version="0", _preload_content=False)
    return decode_nodes(response.data)

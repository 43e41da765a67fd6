"""What Gibbous keeps of a Pod or Node read from the API: the fields its rules read and
nothing else (no managedFields, env, volumes, probes, images, last-applied annotations).

The caches of the autoscaler and the extender hold one such record per object, decoded
once per watch event; every rule keeps reading plain mappings in the API's shape, so the
same functions serve records, whole objects and test fixtures. Strings that repeat across
thousands of objects (label keys and values, quantities, container names) are interned:
the cache then holds one copy of each.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from gibbous.core.podmodel.pods import as_map

# Annotations no rule reads and that can be large.
_DROPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
    }
)
_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generateName",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_OWNER = ("apiVersion", "kind", "name", "uid", "controller")
_POD_SPEC = (
    "nodeName",
    "schedulerName",
    "priority",
    "nodeSelector",
    "affinity",
    "tolerations",
    "schedulingGates",
    "topologySpreadConstraints",
    "overhead",
    "resources",
    "runtimeClassName",
    "resourceClaims",
)
_CONTAINER = ("name", "resources", "restartPolicy")
_POD_STATUS = ("phase", "nominatedNodeName")
_CONDITION = ("type", "status", "reason", "message")
_NODE_SPEC = ("providerID", "taints", "unschedulable")
_NODE_STATUS = ("allocatable", "capacity")


# Replicas of one workload carry equal labels, containers, tolerations, affinity and
# conditions: one shared copy of each equal value serves them all. Bounded: values longer
# than this are kept as they are, and once the table is full new values are not added.
_SHARED_CHARS = 2048
_SHARED_ENTRIES = 4096
_shared_values: dict[str, Any] = {}


def _shared(value: Any) -> Any:
    """An equal value already held, or `value` (recorded for the next equal one). The
    records are read-only: no caller changes a cached object."""
    if not value:
        return value
    try:
        key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return value
    if len(key) > _SHARED_CHARS:
        return value
    found = _shared_values.get(key)
    if found is not None:
        return found
    if len(_shared_values) < _SHARED_ENTRIES:
        _shared_values[key] = value
    return value


def _text(value: object) -> object:
    return sys.intern(value) if type(value) is str else value


def _strings(mapping: object) -> dict[str, object]:
    """A string-to-string map (labels, annotations, ResourceList) with interned text."""
    return {sys.intern(str(k)): _text(v) for k, v in as_map(mapping).items()}


def _interned(value: Any) -> Any:
    """A nested JSON value (affinity, tolerations, ...) with its strings interned."""
    if type(value) is str:
        return sys.intern(value)
    if type(value) is dict:
        return {sys.intern(k) if type(k) is str else k: _interned(v) for k, v in value.items()}
    if type(value) is list:
        return [_interned(v) for v in value]
    return value


def _metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = as_map(obj.get("metadata"))
    out: dict[str, Any] = {k: meta[k] for k in _METADATA if k in meta}
    if "namespace" in out:
        out["namespace"] = _text(out["namespace"])
    if meta.get("labels"):
        out["labels"] = _shared(_strings(meta["labels"]))
    annotations = as_map(meta.get("annotations"))
    if annotations:
        kept = {k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS}
        if kept:
            out["annotations"] = _shared(_strings(kept))
    owners = meta.get("ownerReferences")
    if isinstance(owners, list):
        out["ownerReferences"] = _shared(
            [{k: _text(o[k]) for k in _OWNER if k in o} for o in owners if isinstance(o, Mapping)]
        )
    return out


def _container(container: object) -> object:
    if not isinstance(container, Mapping):
        return container  # left as found: the rules say what is wrong with it
    out: dict[str, Any] = {}
    for key in _CONTAINER:
        if key in container:
            value = container[key]
            out[key] = _interned(value) if key == "resources" else _text(value)
    return out


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a Pod: what intake, planning, the ledgers and lifecycle read."""
    spec = as_map(pod.get("spec"))
    slim_spec: dict[str, Any] = {
        k: _shared(_interned(spec[k])) if isinstance(spec[k], (dict, list)) else _text(spec[k])
        for k in _POD_SPEC
        if k in spec
    }
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if isinstance(containers, list):
            slim_spec[key] = _shared([_container(c) for c in containers])
        elif containers is not None:
            slim_spec[key] = containers
    status = as_map(pod.get("status"))
    slim_status: dict[str, Any] = {k: _text(status[k]) for k in _POD_STATUS if k in status}
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        slim_status["conditions"] = _shared(
            [
                {k: _text(c[k]) for k in _CONDITION if k in c}
                for c in conditions
                if isinstance(c, Mapping)
            ]
        )
    return {"metadata": _metadata(pod), "spec": slim_spec, "status": slim_status}


def slim_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a Node: labels, annotations, taints, quantities and conditions (no
    images, volumes, addresses or daemon endpoints)."""
    spec = as_map(node.get("spec"))
    status = as_map(node.get("status"))
    slim_status: dict[str, Any] = {
        k: _strings(status[k]) for k in _NODE_STATUS if isinstance(status.get(k), Mapping)
    }
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        slim_status["conditions"] = [
            {k: _text(c[k]) for k in _CONDITION if k in c}
            for c in conditions
            if isinstance(c, Mapping)
        ]
    return {
        "metadata": _metadata(node),
        "spec": {k: _interned(spec[k]) for k in _NODE_SPEC if k in spec},
        "status": slim_status,
    }

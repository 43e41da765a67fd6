"""Reading Pod objects (plain dicts in Kubernetes JSON shape).

`pod_requests` is the scheduler's arithmetic (k8s.io/component-helpers
resource.PodRequests): app containers and restartable init containers
(sidecars) are summed; each regular init container runs alone beside the
sidecars started before it; the pod needs the larger of the two; pod-level
`spec.resources` requests of cpu, memory and hugepages replace that aggregate;
then `spec.overhead` and one pod slot are added. A container that sets only a limit gets
that limit as its request, as API defaulting does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gibbous.core.errors import GibbousError
from gibbous.core.podmodel.resources import Resources

Pod = Mapping[str, Any]

_ONE_POD = Resources(pods=1)
_NOTHING = Resources()


_EMPTY: Mapping[str, Any] = {}


def as_map(value: object) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one. Objects decoded from JSON are
    dicts; the exact type test comes first because ABC checks are slow on hot paths."""
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return _EMPTY


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(obj.get("metadata"))


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(obj.get("spec"))


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return as_map(metadata(obj).get("labels"))


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return as_map(metadata(obj).get("annotations"))


def name_of(obj: Mapping[str, Any]) -> str:
    meta = metadata(obj)
    return str(meta.get("name") or meta.get("generateName") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("namespace") or "default")


def key_of(obj: Mapping[str, Any]) -> str:
    """`namespace/name` for messages and maps."""
    return f"{namespace_of(obj)}/{name_of(obj)}"


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("uid") or "")


def _request_lists(container: Mapping[str, Any], path: str) -> list[tuple[Mapping[str, Any], str]]:
    """The container's effective requests as ResourceLists with their field paths: its
    requests, and its limits of the kinds it requests none of (a limit stands in for a
    missing request, as the API server defaults it)."""
    resources = as_map(container.get("resources"))
    if not resources:
        return []
    requests = as_map(resources.get("requests"))
    limits = as_map(resources.get("limits"))
    found: list[tuple[Mapping[str, Any], str]] = []
    if requests:
        found.append((requests, f"{path}.resources.requests"))
    limits_only = {k: v for k, v in limits.items() if k not in requests} if limits else {}
    if limits_only:
        found.append((limits_only, f"{path}.resources.limits"))
    return found


def container_requests(container: Mapping[str, Any], path: str) -> Resources:
    found = _request_lists(container, path)
    return Resources.total(found) if found else _NOTHING


def quantity_problems(pod: Pod) -> list[GibbousError]:
    """Every resource quantity of the pod that does not parse, each named by its field path
    (pod_requests stops at the first)."""
    pod_spec = spec(pod)
    lists: list[tuple[Mapping[str, Any], str]] = [
        (as_map(pod_spec.get("overhead")), "spec.overhead")
    ]
    for key in ("containers", "initContainers"):
        for index, container in enumerate(_containers(pod_spec, key)):
            resources = as_map(container.get("resources"))
            for section in ("requests", "limits"):
                path = f"spec.{key}[{index}].resources.{section}"
                lists.append((as_map(resources.get(section)), path))
    pod_level = as_map(pod_spec.get("resources"))
    for section in ("requests", "limits"):
        lists.append((as_map(pod_level.get(section)), f"spec.resources.{section}"))
    problems: list[GibbousError] = []
    for values, path in lists:
        for name, raw in values.items():
            try:
                Resources.from_resource_list({name: raw}, path)
            except GibbousError as error:
                problems.append(error)
    return problems


def _containers(pod_spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = pod_spec.get(key)
    if type(value) is not list:
        return []
    return [c for c in value if type(c) is dict or isinstance(c, Mapping)]


def _pod_level(pod_spec: Mapping[str, Any]) -> tuple[dict[str, object], dict[str, object]]:
    """`spec.resources` (PodLevelResources, on from 1.34) of the kinds that may be set per
    pod (cpu, memory, hugepages-*): (requests, limits given without a request)."""
    resources = as_map(pod_spec.get("resources"))
    if not resources:
        return {}, {}
    requests, limits = as_map(resources.get("requests")), as_map(resources.get("limits"))

    def supported(name: object) -> bool:
        return name in ("cpu", "memory") or str(name).startswith("hugepages-")

    return (
        {k: v for k, v in requests.items() if supported(k)},
        {k: v for k, v in limits.items() if supported(k) and k not in requests},
    )


def _with_pod_level(
    aggregate: Resources, requests: Mapping[str, object], limits_only: Mapping[str, object]
) -> Resources:
    """kube-scheduler's PodRequests: pod-level cpu, memory and hugepages requests replace the
    containers' aggregate (GPUs, ephemeral storage and other resources keep it). A pod-level
    limit without a request becomes the request where the containers request none of that
    kind, as API defaulting does (where they do, the aggregate is the request)."""
    given = Resources.from_resource_list(requests, "spec.resources.requests")
    limited = Resources.from_resource_list(limits_only, "spec.resources.limits")

    def pick(name: str, requested: int, limit: int, containers: int) -> int:
        if name in requests:
            return requested
        return limit if name in limits_only and not containers else containers

    cpu = pick("cpu", given.cpu_millis, limited.cpu_millis, aggregate.cpu_millis)
    memory = pick("memory", given.memory_bytes, limited.memory_bytes, aggregate.memory_bytes)
    extended = dict(aggregate.extended)
    extended.update({k: v for k, v in limited.extended if k not in extended})
    extended.update(dict(given.extended))
    return Resources(
        cpu,
        memory,
        aggregate.gpus,
        aggregate.pods,
        aggregate.ephemeral_bytes,
        tuple(sorted((k, v) for k, v in extended.items() if v)),
    )


def pod_requests(pod: Pod) -> Resources:
    """Effective requests of `pod` as kube-scheduler computes them (see module doc)."""
    pod_spec = spec(pod)
    # App containers (and overhead) are summed into one vector: most pods stop there.
    lists = [
        found
        for index, container in enumerate(_containers(pod_spec, "containers"))
        for found in _request_lists(container, f"spec.containers[{index}]")
    ]
    overhead = pod_spec.get("overhead")
    init_containers = _containers(pod_spec, "initContainers")
    pod_requests_set, pod_limits_only = _pod_level(pod_spec)
    if not init_containers and not pod_requests_set and not pod_limits_only:
        if overhead:
            lists.append((as_map(overhead), "spec.overhead"))
        return Resources.total(lists, pods=1)
    app = Resources.total(lists)
    sidecars = _NOTHING
    init_peak = _NOTHING
    for index, container in enumerate(init_containers):
        requests = container_requests(container, f"spec.initContainers[{index}]")
        if container.get("restartPolicy") == "Always":
            app = app + requests
            sidecars = sidecars + requests
            init_peak = init_peak.maximum(sidecars)
        else:
            init_peak = init_peak.maximum(requests + sidecars)
    app = app.maximum(init_peak)
    if pod_requests_set or pod_limits_only:
        app = _with_pod_level(app, pod_requests_set, pod_limits_only)
    if overhead:
        app = app + Resources.from_resource_list(as_map(overhead), "spec.overhead")
    return app + _ONE_POD


def owner_kinds(pod: Pod) -> list[str]:
    owners = metadata(pod).get("ownerReferences")
    if not isinstance(owners, list):
        return []
    return [str(o.get("kind", "")) for o in owners if isinstance(o, Mapping)]


def is_daemonset_pod(pod: Pod) -> bool:
    return "DaemonSet" in owner_kinds(pod)


def is_mirror_pod(pod: Pod) -> bool:
    return "kubernetes.io/config.mirror" in annotations_of(pod) or "Node" in owner_kinds(pod)


def is_terminating(pod: Pod) -> bool:
    return bool(metadata(pod).get("deletionTimestamp"))


def is_finished(pod: Pod) -> bool:
    status = pod.get("status")
    return isinstance(status, Mapping) and status.get("phase") in ("Succeeded", "Failed")


def node_name_of(pod: Pod) -> str:
    return str(spec(pod).get("nodeName") or "")


def scheduling_gates(pod: Pod) -> list[str]:
    gates = spec(pod).get("schedulingGates")
    if not isinstance(gates, list):
        return []
    return [str(g.get("name", "")) for g in gates if isinstance(g, Mapping)]


def tolerations(pod: Pod) -> list[Mapping[str, Any]]:
    value = spec(pod).get("tolerations")
    return [t for t in value if isinstance(t, Mapping)] if isinstance(value, list) else []


def tolerates(pod_tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Upstream ToleratesTaint for NoSchedule/NoExecute/PreferNoSchedule taints."""
    for toleration in pod_tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists":
            return True
        if operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taints(pod: Pod, taints: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Taints with effect NoSchedule or NoExecute that the pod does not tolerate."""
    pod_tolerations = tolerations(pod)
    return [
        t
        for t in taints
        if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod_tolerations, t)
    ]


def priority_of(pod: Pod) -> int:
    value = spec(pod).get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def pod_condition(pod: Pod, condition_type: str) -> Mapping[str, Any] | None:
    status = pod.get("status")
    if not isinstance(status, Mapping):
        return None
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == condition_type:
            return condition
    return None


def condition_is_true(obj: Mapping[str, Any], condition_type: str) -> bool:
    """`status.conditions[type].status == "True"` (a Pod's or a Node's)."""
    condition = pod_condition(obj, condition_type)
    return condition is not None and condition.get("status") == "True"

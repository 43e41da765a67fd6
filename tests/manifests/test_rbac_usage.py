"""The chart grants each component exactly the Kubernetes calls its code makes.

The calls are read from the code, not listed by hand: every call of a Kubernetes client
API method (or reference to one, as handed to `Informer` or a retry wrapper) on a
receiver made by `client.<Something>Api(...)` is found with `ast` in the component's
modules, its command's `run` (gibbous/commands/<component>.py) and the shared helpers they reach by name; the
method's HTTP verb and path are read from the kubernetes client's own generated source
and turned into an RBAC (apiGroup, resource, verb) the way the API server's authorizer
does (kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb).
The rendered Roles and ClusterRoles bound to the component's ServiceAccount must grant
that set and nothing more. The secondary scheduler is upstream kube-scheduler and is not
scanned.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gibbous.devcluster.binaries import current_version
from tests.manifests.test_chart import template

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gibbous"

# (apiGroup, resource, verb); a non-resource URL is ("", "/version", "get").
Grant = tuple[str, str, str]

# Calls whose resource is an argument, not part of the method: what the arguments are, by
# the module and method that make them. `KubeCluster._metrics` is called with "nodes"
# (node_metrics) and "pods" (pod_metrics) of metrics.k8s.io, and lists them.
DYNAMIC: dict[tuple[str, str], frozenset[Grant]] = {
    ("gibbous/autoscaler/kube.py", "list_cluster_custom_object"): frozenset(
        {("metrics.k8s.io", "nodes", "list"), ("metrics.k8s.io", "pods", "list")}
    ),
}

# Modules that run only under some settings, and the settings: the chart must grant their
# calls exactly then. kwok plays the cloud and the kubelets; the webhook keeps its own
# certificates only with webhook.tls=self.
CONDITIONAL: dict[str, str] = {
    "gibbous/autoscaler/cloud/kwok.py": "kwok",
    # Reads kube-system/aws-auth at start (EKS node access), only with the aws provider.
    "gibbous/autoscaler/providers/aws.py": "aws",
    "gibbous/certs/selfmanaged.py": "self-managed-tls",
}

COMPONENT_PACKAGES = {
    "webhook": "gibbous/webhook",
    "extender": "gibbous/extender",
    "autoscaler": "gibbous/autoscaler",
}
# Never part of a deployed component's process: the pure core (no I/O by contract), the
# dev cluster, the simulator and the docs generator.
NOT_SHARED = ("gibbous/core", "gibbous/devcluster", "gibbous/simulation", "gibbous/docsgen")
ENTRY_MODULES = ("gibbous/cli.py", "gibbous/commands")


@cache
def api_classes() -> dict[str, type]:
    return {name: getattr(client, name) for name in dir(client) if name.endswith("Api")}


@cache
def http_of(api_class: str, method: str) -> tuple[str, str] | None:
    """(HTTP method, path template) of a client API method, from the generated source."""
    serializer = getattr(api_classes()[api_class], f"_{method}_serialize", None)
    if serializer is None:
        return None
    source = inspect.getsource(serializer)
    (http,) = re.findall(r"method='([A-Z]+)'", source)
    (path,) = re.findall(r"resource_path='([^']+)'", source)
    return http, path


def grant_of(http: str, path: str, watches: bool) -> frozenset[Grant]:
    """What the API server's authorizer checks for a request (the RBAC verb of the HTTP
    verb; list for a collection GET, get for one object's; watch for a watching list)."""
    if not path.startswith(("/api/", "/apis/")):
        return frozenset({("", path.rstrip("/"), "get")})
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    assert "{" not in "".join(rest[::2]), f"templated resource in {path}: list it in DYNAMIC"
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
        "GET": "get" if named else "list",
    }[http]
    grants = {(group, resource, verb)}
    if watches:
        grants.add((group, resource, "watch"))
    return frozenset(grants)


@dataclass
class Unit:
    """A piece of code: a whole module, an entry function, or a shared helper."""

    path: str
    nodes: list[ast.AST]
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for node in self.nodes:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name):
                    self.names.add(sub.id)
                elif isinstance(sub, ast.Attribute):
                    self.names.add(sub.attr)
                elif isinstance(sub, ast.alias):
                    self.names.add(sub.name.rsplit(".", 1)[-1])


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def top_level(module: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, node


def shared_units() -> dict[str, list[Unit]]:
    """Top-level functions and classes of the modules components share, by name."""
    out: dict[str, list[Unit]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = relative(path)
        if rel.startswith((*NOT_SHARED, *COMPONENT_PACKAGES.values(), *ENTRY_MODULES)):
            continue
        for name, node in top_level(parse(path)):
            out.setdefault(name, []).append(Unit(rel, [node]))
    return out


def entry_units(component: str) -> list[Unit]:
    """The command's `run` and the module-level helpers of its module it calls."""
    # The command's own module (gibbous/commands/<component>.py, entry point `run`).
    path = REPO / "gibbous" / "commands" / f"{component}.py"
    if path.exists():
        functions = dict(top_level(parse(path)))
        entry = "run"
        units = [Unit(relative(path), [functions[entry]])]
        seen = {entry}
        while True:
            wanted = {n for unit in units for n in unit.names} & set(functions) - seen
            if not wanted:
                return units
            seen |= wanted
            units += [Unit(relative(path), [functions[name]]) for name in sorted(wanted)]
    raise AssertionError(f"no gibbous/commands/{component}.py with a run function")


def component_units(component: str, settings: set[str]) -> list[Unit]:
    """The component's own modules, its entry point, and the shared helpers reached by
    name from them (transitively), leaving out modules of settings not in force."""

    def wanted(unit: Unit) -> bool:
        return CONDITIONAL.get(unit.path, "") in settings | {""}

    package = REPO / COMPONENT_PACKAGES[component]
    units = [Unit(relative(p), [parse(p)]) for p in sorted(package.rglob("*.py"))]
    units = [u for u in units if wanted(u)] + entry_units(component)
    shared = shared_units()
    reached: set[str] = set()
    while True:
        names = {n for unit in units for n in unit.names} & set(shared) - reached
        if not names:
            return units
        reached |= names
        units += [u for name in sorted(names) for u in shared[name] if wanted(u)]


def receivers(units: Iterable[Unit]) -> dict[str, str]:
    """Names (variables, attributes, parameters) holding a client API object -> its class."""
    out: dict[str, set[str]] = {}

    def api_class(expr: ast.AST | None) -> str | None:
        if isinstance(expr, ast.Call):
            expr = expr.func
        if isinstance(expr, ast.Attribute) and expr.attr in api_classes():
            return expr.attr
        return None

    for unit in units:
        for node in unit.nodes:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Assign) and (cls := api_class(sub.value)):
                    for target in sub.targets:
                        name = target.attr if isinstance(target, ast.Attribute) else None
                        name = target.id if isinstance(target, ast.Name) else name
                        if name:
                            out.setdefault(name, set()).add(cls)
                elif isinstance(sub, ast.arg) and (cls := api_class(sub.annotation)):
                    out.setdefault(sub.arg, set()).add(cls)
    for name, classes in out.items():
        assert len(classes) == 1, f"{name} holds {classes}: the scan cannot tell them apart"
    return {name: classes.pop() for name, classes in out.items()}


def used(component: str, settings: set[str]) -> frozenset[Grant]:
    units = component_units(component, settings)
    holders = receivers(units)
    out: set[Grant] = set()
    for unit in units:
        for node in unit.nodes:
            informed = {
                id(call.args[0])
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and call.args
                and getattr(call.func, "id", getattr(call.func, "attr", "")) == "Informer"
            }
            for sub in ast.walk(node):
                if not isinstance(sub, ast.Attribute):
                    continue
                base = sub.value
                cls = None
                if isinstance(base, ast.Call) and isinstance(base.func, ast.Attribute):
                    cls = base.func.attr if base.func.attr in api_classes() else None
                elif isinstance(base, ast.Attribute | ast.Name):
                    cls = holders.get(base.attr if isinstance(base, ast.Attribute) else base.id)
                if cls is None or (http := http_of(cls, sub.attr)) is None:
                    continue
                if (unit.path, sub.attr) in DYNAMIC:
                    out |= DYNAMIC[(unit.path, sub.attr)]
                else:
                    out |= grant_of(*http, watches=id(sub) in informed)
    return frozenset(out)


def granted(objects: list[dict[str, Any]], account: str) -> frozenset[Grant]:
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    out: set[Grant] = set()
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("name") == account for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], namespace, ref["name"]))
        assert role is not None, f"{binding['metadata']['name']} binds a role the chart lacks"
        for rule in role["rules"]:
            for url in rule.get("nonResourceURLs", []):
                out |= {("", url, verb) for verb in rule["verbs"]}
            for group in rule.get("apiGroups", []):
                out |= {
                    (group, resource, verb)
                    for resource in rule["resources"]
                    for verb in rule["verbs"]
                }
    return frozenset(out)


SETUPS = {
    # name -> (--set items, settings in force)
    "kwok": (("autoscaler.provider=kwok",), {"kwok", "self-managed-tls"}),
    "aws": (("cloudProvider=aws",), {"aws", "self-managed-tls"}),
    "gcp": (("cloudProvider=gcp",), {"self-managed-tls"}),
    "azure": (("cloudProvider=azure",), {"self-managed-tls"}),
    "oci": (("cloudProvider=oci",), {"self-managed-tls"}),
    # The chart's default provider is its cloudProvider, aws.
    "cert-manager": (("webhook.tls=cert-manager",), {"aws"}),
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("component", sorted(COMPONENT_PACKAGES))
def test_each_component_is_granted_exactly_the_calls_its_code_makes(
    component: str, setup: str
) -> None:
    sets, settings = SETUPS[setup]
    objects = template(current_version(), (), sets)
    calls = used(component, settings)
    grants = granted(objects, f"gibbous-{component}")
    assert not grants - calls, f"granted, never called: {sorted(grants - calls)}"
    assert not calls - grants, f"called, never granted: {sorted(calls - grants)}"


def test_the_scan_sees_what_the_code_calls() -> None:
    # Hand-read from the code: the autoscaler evicts (gibbous/autoscaler/kube.py `evict`),
    # kwok patches node heartbeat Leases (gibbous/kubeletsim.py `renew_lease`), the
    # webhook replaces its Secret (gibbous/certs/selfmanaged.py), the extender watches pods.
    kwok = used("autoscaler", {"kwok"})
    assert ("", "pods/eviction", "create") in kwok
    assert ("coordination.k8s.io", "leases", "patch") in kwok
    assert ("coordination.k8s.io", "leases", "patch") not in used("autoscaler", set())
    assert ("", "secrets", "update") in used("webhook", {"self-managed-tls"})
    # The extender's own mutual TLS (webhook.tls self): its two Secrets, and no webhook
    # configuration (that is the webhook's store, not reached from the extender).
    assert used("extender", {"self-managed-tls"}) - used("extender", set()) == {
        ("", "secrets", "get"),
        ("", "secrets", "create"),
        ("", "secrets", "update"),
    }
    assert used("extender", set()) == {
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
    }
    assert grant_of("POST", "/api/v1/namespaces/{namespace}/pods/{name}/eviction", False) == {
        ("", "pods/eviction", "create")
    }


def test_leases_are_granted_by_name_and_namespace() -> None:
    objects = template(current_version(), (), ("autoscaler.provider=kwok",))
    for role in [o for o in objects if o["kind"] in ("Role", "ClusterRole")]:
        for rule in role["rules"]:
            if "leases" not in rule.get("resources", []):
                continue
            name = role["metadata"]["name"]
            assert role["kind"] == "Role", f"{name}: Leases cluster-wide"
            if role["metadata"]["namespace"] == "kube-node-lease":
                # kwok's node heartbeats: one Lease per node, named after it.
                assert name == "gibbous-autoscaler-node-heartbeats"
                assert rule["verbs"] == ["create", "patch"]
            else:
                assert role["metadata"]["namespace"] == "elotl"
                # create cannot be limited by name, and cannot overwrite a Lease.
                assert rule.get("resourceNames") or rule["verbs"] == ["create"], name
    autoscaler = next(
        o
        for o in objects
        if o["kind"] == "Role" and o["metadata"]["name"].startswith("gibbous-autoscaler-leader")
    )
    writable = {
        name
        for rule in autoscaler["rules"]
        if "leases" in rule["resources"] and set(rule["verbs"]) & {"update", "patch"}
        for name in rule.get("resourceNames", [])
    }
    assert writable == {"gibbous-autoscaler"}


def test_the_scheduler_has_a_memory_limit() -> None:
    objects = template(current_version())
    (scheduler,) = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "gibbous-scheduler"
    ]
    assert scheduler["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]

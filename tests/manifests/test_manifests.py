"""Render every kustomization with kubectl's kustomize and validate it offline.

The directories are the Helm chart rendered by scripts/render-manifests (test_chart.py
keeps them fresh). Kubernetes kinds are checked strictly against the OpenAPI document of
the release each directory is rendered for (tests/manifests/openapi.py); the
wire-critical settings of the webhook configurations are asserted one by one; the
configuration and command lines inside are parsed by Gibbous itself, so a manifest can
never carry an option Gibbous rejects.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gibbous.cli import build_parser
from gibbous.core.settings.loader import build_config
from gibbous.devcluster.binaries import OLD_VERSION, current_version
from gibbous.devcluster.installtools import MANIFEST_FLAVOURS, helm_tools
from gibbous.devcluster.stack import webhook_configurations
from gibbous.extender.app import create_app as create_extender_app
from gibbous.extender.state import StaticView
from gibbous.webhook.app import create_app
from tests.manifests import openapi

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
THIRD_PARTY_KINDS = {"Issuer", "Certificate"}


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(helm_tools().kubectl), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=sorted(MANIFEST_FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def objects(flavour: str) -> list[dict[str, Any]]:
    return render(MANIFESTS / flavour)


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def test_every_object_validates_strictly(flavour: str, objects: list[dict[str, Any]]) -> None:
    # Rendered for 1.20 is checked against 1.20.2's API; the others against the current one.
    old = MANIFEST_FLAVOURS[flavour] == OLD_VERSION
    version = OLD_VERSION if old else current_version()
    for obj in objects:
        if obj["kind"] in THIRD_PARTY_KINDS:
            assert obj["apiVersion"].startswith("cert-manager.io/")
            continue
        assert openapi.problems(version, obj) == [], (obj["kind"], obj["metadata"]["name"])


def test_webhook_configurations_are_wired_for_kube_apiserver(objects: list[dict[str, Any]]) -> None:
    routes = {route.path for route in create_app(build_config()).routes}  # type: ignore[attr-defined]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (configuration,) = find(objects, kind)
        name = configuration["metadata"]["name"]
        assert name > "vpa-webhook-config"  # byte-wise order: called after VPA's webhook
        assert name == build_config().webhook_config_prefix + "gibbous"
        for hook in configuration["webhooks"]:
            assert hook["failurePolicy"] == "Ignore"
            assert hook["sideEffects"] == "None"
            assert 2 <= hook["timeoutSeconds"] <= 3
            assert hook["admissionReviewVersions"] == ["v1"]
            assert hook["clientConfig"]["service"]["path"] in routes
            excluded = hook["namespaceSelector"]["matchExpressions"][0]
            assert excluded["operator"] == "NotIn" and {"kube-system", "gibbous"} <= set(
                excluded["values"]
            )
            if kind == "MutatingWebhookConfiguration":
                assert hook["reinvocationPolicy"] == "IfNeeded"
                assert hook["rules"][0]["operations"] == ["CREATE"]


@pytest.mark.parametrize("name", ["gibbous-webhook", "gibbous-extender", "gibbous-autoscaler"])
def test_deployment_is_hardened_and_its_command_line_parses(
    objects: list[dict[str, Any]], name: str
) -> None:
    (deployment,) = find(objects, "Deployment", name)
    spec = deployment["spec"]
    # Autoscaler replicas are 0 where Gibbous has no provider for the cloud yet.
    assert spec["replicas"] >= 2 or (name == "gibbous-autoscaler" and spec["replicas"] == 0)
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["affinity"]["podAntiAffinity"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]
    args = build_parser().parse_args(container["args"])
    assert args.command == name.removeprefix("gibbous-"), shlex.join(container["args"])
    assert find(objects, "PodDisruptionBudget", name)


def test_embedded_configuration_is_valid_and_keeps_lunas_defaults(
    flavour: str, objects: list[dict[str, Any]]
) -> None:
    """The rendered configuration is one Gibbous accepts and, as rendered, says what Luna's
    documentation says a fresh install does (luna-spec-from-seeds.md): pods labelled
    `elotl-luna=true` are managed, 2 CPUs make a pod bin-select (P09), hot-node levels at
    60/65 %, 80/85 % and under 10/15 % (P15), under-used bin-pack nodes below 20 % (Luna's
    configuration page), hot-node mitigation opt-in; an overlay for a cloud selects it."""
    (config_map,) = find(objects, "ConfigMap", "gibbous-config")
    cfg = build_config(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert cfg.managed_labels == (("elotl-luna", "true"),)
    assert cfg.bin_select_cpu_millis == 2000
    hot = cfg.hot_node
    assert (hot.yellow_cpu, hot.yellow_memory, hot.red_cpu, hot.red_memory) == (60, 65, 80, 85)
    assert (hot.green_cpu, hot.green_memory, hot.enabled) == (10, 15, False)
    assert cfg.scale_down.bin_pack_utilization_threshold == 0.2
    cloud = flavour.removeprefix("overlays/")
    if cloud in ("aws", "gcp", "azure", "oci"):
        assert cfg.cloud == cloud


def test_rbac_is_least_privilege(objects: list[dict[str, Any]]) -> None:
    for role in find(objects, "Role") + find(objects, "ClusterRole"):
        for rule in role.get("rules") or []:
            assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", [])
            if "secrets" in rule.get("resources", []) and rule["verbs"] != ["create"]:
                # Each component's own TLS Secrets (webhook, extender), by name.
                component = role["metadata"]["name"]
                assert rule.get("resourceNames") in (
                    [f"{component}-tls"],
                    [f"{component}-tls", f"{component}-client-tls"],
                ), component


def scheduler_configuration(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = find(objects, "ConfigMap", "gibbous-scheduler-config")
    document: dict[str, Any] = yaml.safe_load(config_map["data"]["scheduler-config.yaml"])
    return document


def test_secondary_scheduler_calls_the_extender(objects: list[dict[str, Any]]) -> None:
    configuration = scheduler_configuration(objects)
    assert configuration["apiVersion"] in (
        "kubescheduler.config.k8s.io/v1",
        "kubescheduler.config.k8s.io/v1beta1",
    )
    (profile,) = configuration["profiles"]
    (gibbous_config,) = find(objects, "ConfigMap", "gibbous-config")
    assert (
        profile["schedulerName"]
        == build_config(yaml.safe_load(gibbous_config["data"]["config.yaml"])).scheduler_name
    )
    (extender,) = configuration["extenders"]
    (service,) = find(objects, "Service", "gibbous-extender")
    port = service["spec"]["ports"][0]["port"]
    # HTTPS (mutual TLS) in every rendering.
    assert extender["enableHTTPS"] is True
    assert (
        extender["urlPrefix"]
        == f"https://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"
    )
    routes = {route.path for route in create_extender_app(build_config(), StaticView()).routes}  # type: ignore[attr-defined]
    assert f"/{extender['filterVerb']}" in routes and f"/{extender['prioritizeVerb']}" in routes
    assert (
        extender["nodeCacheCapable"] is True
        and extender["ignorable"] is True
        and extender["weight"] > 0
    )
    assert extender["httpTimeout"].endswith("s") and float(extender["httpTimeout"][:-1]) <= 5
    assert configuration["leaderElection"]["leaderElect"] is True
    (deployment,) = find(objects, "Deployment", "gibbous-scheduler")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    if configuration["apiVersion"].endswith("v1beta1"):
        assert image.endswith(("v1.19.0", "v1.20.2", "v1.21.0", "v1.22.0")) or ":v1.2" in image


def test_extender_can_only_read_nodes_and_pods(objects: list[dict[str, Any]]) -> None:
    (role,) = find(objects, "ClusterRole", "gibbous-extender")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]}
    ]


def test_autoscaler_provider_matches_the_cloud(objects: list[dict[str, Any]]) -> None:
    (config_map,) = find(objects, "ConfigMap", "gibbous-config")
    shipped = build_config(yaml.safe_load(config_map["data"]["config.yaml"]))
    (deployment,) = find(objects, "Deployment", "gibbous-autoscaler")
    args = build_parser().parse_args(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    if deployment["spec"]["replicas"]:
        assert args.provider in ("kwok", shipped.cloud)
        # Without a launch template, EC2 nodes need an instance profile to join.
        assert (
            args.provider != "aws" or args.aws_launch_template or shipped.aws.node_instance_profile
        )
        assert args.lease_namespace == deployment["metadata"]["namespace"]


def test_dev_cluster_registers_the_shipped_webhook_configurations() -> None:
    shipped = {o["kind"]: o for o in render(MANIFESTS / "base") if "Webhook" in o["kind"]}
    ours = webhook_configurations(build_config({}), "https://127.0.0.1:1", b"CA")
    for generated in ours:
        expected = shipped[generated["kind"]]
        assert generated["metadata"]["name"] == expected["metadata"]["name"]
        assert len(generated["webhooks"]) == len(expected["webhooks"])
        for mine, theirs in zip(generated["webhooks"], expected["webhooks"], strict=True):
            strip = ("clientConfig",)
            assert {k: v for k, v in mine.items() if k not in strip} == {
                k: v for k, v in theirs.items() if k not in strip
            }
            assert mine["clientConfig"]["url"].endswith(theirs["clientConfig"]["service"]["path"])

"""The Helm chart (charts/gibbous) with a real helm: lint, render for every cloud, TLS
mode and Luna values file at Kubernetes 1.20 and the current release, every object
checked against that release's OpenAPI, and what the objects say of each other checked
(names, the webhook's selector, the scheduler's configuration, RBAC). Installing into a
real API server is tests/e2e/test_helm_e2e.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from gibbous.cli import build_parser
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config, render_config
from gibbous.core.settings.options.luna import INSTALL_KEYS
from gibbous.devcluster.binaries import OLD_VERSION, current_version
from gibbous.devcluster.installtools import helm_tools, render_manifests
from tests.docs.fenced import fenced_blocks
from tests.manifests import openapi

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "gibbous"
LUNA_VALUES = REPO / "tests" / "fixtures" / "luna-values"
VERSIONS = (OLD_VERSION, current_version())
IMAGE = "registry.example.com/gibbous"  # the chart has no default: no image is published

# name -> (values files, --set items)
CASES: dict[str, tuple[Sequence[Path], Sequence[str]]] = {
    "defaults": ((), ()),
    "aws": ((REPO / "manifests" / "overlays" / "aws" / "values.yaml",), ()),
    "gcp": ((REPO / "manifests" / "overlays" / "gcp" / "values.yaml",), ()),
    "azure": ((REPO / "manifests" / "overlays" / "azure" / "values.yaml",), ()),
    "oci": ((REPO / "manifests" / "overlays" / "oci" / "values.yaml",), ()),
    "cert-manager": ((), ("webhook.tls=cert-manager",)),
    "luna-p07-rke2": ((LUNA_VALUES / "p07-rke2.yaml",), ()),
    "luna-gke-timeslices": ((LUNA_VALUES / "gke-timeslices.yaml",), ()),
    "prefixed": ((), ("labels=team.example.com/autoscale=yes", "webhookConfigPrefix=zzz-")),
    # Luna's list form (docs.elotl.co/luna/configuration: --set labels='key1=value1,key2=value2')
    "label-list": ((), (r"labels=key1=value1\,key2=value2\,key1=other",)),
    # P18's OpenTelemetry collector sidecar reading the autoscaler's log files
    "otel-sidecar": ((REPO / "examples" / "otel-sidecar-values.yaml",), ()),
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_tools().helm), *args], capture_output=True, text=True, check=False
    )


def template(
    version: str, values: Sequence[Path] = (), sets: Sequence[str] = (), release: str = "gibbous"
) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", "elotl", "--kube-version", version]
    args += ["--set", f"image.repository={IMAGE}"]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


def args_of(deployment: dict[str, Any]) -> list[str]:
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def selected_labels(selector: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """(key, values) an object selector of one label key admits."""
    if "matchLabels" in selector:
        ((key, value),) = selector["matchLabels"].items()
        return key, frozenset({value})
    ((expression,),) = [selector["matchExpressions"]]
    assert expression["operator"] == "In"
    return expression["key"], frozenset(expression["values"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_is_strict_clean(case: str) -> None:
    values, sets = CASES[case]
    args = ["lint", "--strict", str(CHART), "--set", f"image.repository={IMAGE}"]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_objects_are_valid_and_agree(case: str, version: str) -> None:
    values, sets = CASES[case]
    objects = template(version, values, sets, release="elotl-luna")
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue
        assert openapi.problems(version, obj) == [], (obj["kind"], obj["metadata"]["name"])

    config = build_config(
        yaml.safe_load(one(objects, "ConfigMap", "gibbous-config")["data"]["config.yaml"])
    )
    # The webhook: its selector is `labels`, its configurations are named by the prefix,
    # and what it is allowed to patch and read is what its flags name.
    wanted: dict[str, set[str]] = {}
    for label_key, label_value in config.managed_labels:
        wanted.setdefault(label_key, set()).add(label_value)
    name = config.webhook_config_prefix + "elotl-luna-gibbous"
    webhook = one(objects, "Deployment", "-webhook")
    webhook_args = args_of(webhook)
    build_parser().parse_args(webhook_args)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        configuration = one(objects, kind)
        assert configuration["metadata"]["name"] == name
        *by_label, opted_in = configuration["webhooks"]
        # A pod carrying any one of the labels is selected by exactly one entry per key.
        assert {selected_labels(hook["objectSelector"]) for hook in by_label} == {
            (key, frozenset(values)) for key, values in wanted.items()
        }
        assert {e["key"] for e in opted_in["objectSelector"]["matchExpressions"]} == set(wanted)
        assert {e["operator"] for e in opted_in["objectSelector"]["matchExpressions"]} == {
            "DoesNotExist"
        }
        for hook in configuration["webhooks"]:
            assert hook["clientConfig"]["service"]["name"] == webhook["metadata"]["name"]
            assert hook["clientConfig"]["service"]["namespace"] == "elotl"
            excluded = hook["namespaceSelector"]["matchExpressions"][0]["values"]
            assert set(excluded) == {"kube-system", "elotl"}
    cluster_role = one(objects, "ClusterRole", "-webhook")
    role = one(objects, "Role", "-webhook")
    lease = flag(webhook_args, "scheduler-lease")
    assert lease.split("/") == ["elotl", "elotl-luna-gibbous-scheduler"]
    assert {"get"} == {
        verb
        for rule in role["rules"]
        if rule.get("resourceNames") == [lease.split("/")[1]]
        for verb in rule["verbs"]
    }
    if "--self-managed-certs" in webhook_args:
        assert flag(webhook_args, "webhook-configuration") == name
        (patch_rule,) = [r for r in cluster_role["rules"] if "resourceNames" in r]
        assert patch_rule["resourceNames"] == [name]
        secret_rules = [r for r in role["rules"] if "secrets" in r.get("resources", [])]
        assert [flag(webhook_args, "secret")] in [r.get("resourceNames") for r in secret_rules]
    else:
        certificate = one(objects, "Certificate", "-webhook")
        assert (
            certificate["spec"]["secretName"]
            == (webhook["spec"]["template"]["spec"]["volumes"][1]["secret"]["secretName"])
        )
        annotations = one(objects, "MutatingWebhookConfiguration")["metadata"]["annotations"]
        assert (
            annotations["cert-manager.io/inject-ca-from"]
            == "elotl/" + certificate["metadata"]["name"]
        )

    # The secondary scheduler: the configuration API this version serves, the cluster's
    # own scheduler image, a profile named as the webhook sets pods' schedulerName, and
    # the extender's Service as its URL.
    scheduler_config = yaml.safe_load(
        one(objects, "ConfigMap", "-scheduler-config")["data"]["scheduler-config.yaml"]
    )
    minor = int(version.split(".")[1])
    expected = "v1" if minor >= 25 else "v1beta3" if minor >= 23 else "v1beta1"
    assert scheduler_config["apiVersion"] == f"kubescheduler.config.k8s.io/{expected}"
    scheduler = one(objects, "Deployment", "-scheduler")
    image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.k8s.io/kube-scheduler:v{version}"
    assert [p["schedulerName"] for p in scheduler_config["profiles"]] == [config.scheduler_name]
    (extender,) = scheduler_config["extenders"]
    service = one(objects, "Service", "-extender")
    # Mutual TLS in every TLS mode (tests/manifests/test_extender_tls.py).
    assert extender["urlPrefix"] == f"https://{service['metadata']['name']}.elotl.svc:8888"
    assert extender["enableHTTPS"] is True
    assert scheduler_config["leaderElection"]["resourceName"] == lease.split("/")[1]

    # PodDisruptionBudgets in the API group this version serves.
    for pdb in [o for o in objects if o["kind"] == "PodDisruptionBudget"]:
        assert pdb["apiVersion"] == ("policy/v1" if minor >= 21 else "policy/v1beta1")

    # The autoscaler runs the provider of cloudProvider, leads through a Lease it may
    # write, and watches the scheduler's.
    autoscaler = one(objects, "Deployment", "-autoscaler")
    parsed = build_parser().parse_args(args_of(autoscaler))
    assert parsed.provider == config.cloud or (case in ("defaults",) and parsed.provider == "aws")
    assert parsed.lease_namespace == "elotl" and parsed.scheduler_lease == lease


def test_kwok_is_the_only_provider_that_may_write_nodes_status_and_make_nodes() -> None:
    for provider in ("aws", "gcp", "azure", "oci", "kwok"):
        objects = template(current_version(), (), (f"autoscaler.provider={provider}",))
        rules = one(objects, "ClusterRole", "-autoscaler")["rules"]
        verbs = {
            (resource, verb)
            for rule in rules
            for resource in rule.get("resources", [])
            for verb in rule["verbs"]
        }
        writes_nodes = {("nodes", "create"), ("nodes/status", "patch"), ("pods/status", "patch")}
        assert (writes_nodes <= verbs) == (provider == "kwok"), provider
        assert ("pods", "delete") in verbs  # pods of a stopped scheduler are rerouted
        for rule in rules:
            assert "*" not in rule["verbs"] and "*" not in rule.get("resources", [])


def test_luna_values_reach_the_pods_that_use_them() -> None:
    objects = template(current_version(), (LUNA_VALUES / "p07-rke2.yaml",))
    autoscaler = one(objects, "Deployment", "-autoscaler")
    pod = autoscaler["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "dockerhub"}]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "aws-credentials"}}]
    config = yaml.safe_load(one(objects, "ConfigMap", "gibbous-config")["data"]["config.yaml"])
    assert not set(config) & set(INSTALL_KEYS)
    loaded = build_config(config)
    assert loaded.aws.user_data_type.value == "Template" and "rke2-agent" in loaded.aws.user_data
    assert loaded.cluster_id == Config().cluster_id  # `clusterID:` left empty: the default

    gke = build_config(
        yaml.safe_load(
            one(
                template(current_version(), (LUNA_VALUES / "gke-timeslices.yaml",)),
                "ConfigMap",
                "gibbous-config",
            )["data"]["config.yaml"]
        )
    )
    assert (gke.cloud, gke.gcp.disk_size_gb, gke.nvidia_gpu_time_slices) == ("gcp", 150, 2)
    assert gke.place_node_selector is True


def test_a_configuration_change_rolls_the_pods() -> None:
    def checksums(*sets: str) -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for o in template(current_version(), (), sets)
            if o["kind"] == "Deployment"
        }

    before, after = checksums(), checksums("scaleUpTimeout=20m")
    for name in ("gibbous-webhook", "gibbous-extender", "gibbous-autoscaler"):
        assert before[name] != after[name], name
    assert checksums("image.tag=0.2.0") == before  # not a configuration change


def test_values_carry_every_option_with_its_default_and_nothing_else() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    options = {k: v for k, v in values.items() if k not in INSTALL_KEYS}
    assert render_config(build_config(options)) == render_config(Config())
    top_level = {key.split(".")[0] for key in render_config(Config())}
    assert set(options) == top_level
    assert set(values) - set(options) == set(INSTALL_KEYS)


def test_the_chart_leaves_out_of_the_configuration_exactly_the_install_settings() -> None:
    template_text = (CHART / "templates" / "config.yaml").read_text()
    (omitted,) = re.findall(r"omit \.Values ((?:\"[A-Za-z]+\" ?)+)", template_text)
    assert set(re.findall(r'"([A-Za-z]+)"', omitted)) == set(INSTALL_KEYS)


def test_without_an_image_the_chart_refuses_to_render_and_says_how_to_get_one() -> None:
    # No Gibbous image is published: a literal install would end in ImagePullBackOff.
    result = helm("template", "gibbous", str(CHART))
    assert result.returncode != 0
    assert "image.repository is not set" in result.stderr
    assert "scripts/build-image" in result.stderr


def test_bad_values_fail_the_install_with_a_reason() -> None:
    image = f"image.repository={IMAGE}"
    result = helm(
        "template", "gibbous", str(CHART), "--set", image, "--set", "labels=no-equals-sign"
    )
    assert result.returncode != 0 and "labels: expected key=value" in result.stderr
    result = helm(
        "template", "gibbous", str(CHART), "--set", image, "--set", "cloudProvider=digitalocean"
    )
    assert result.returncode != 0 and "expected aws, gcp, azure, oci or kwok" in result.stderr
    result = helm("template", "gibbous", str(CHART), "--set", image, "--set", "webhook.tls=manual")
    assert result.returncode != 0 and "webhook.tls" in result.stderr


def test_committed_manifests_are_the_chart_rendered() -> None:
    for path, text in render_manifests(REPO).items():
        assert path.read_text() == text, f"{path} is stale: run scripts/render-manifests"


def test_lunas_label_list_selects_pods_carrying_any_of_the_labels() -> None:
    # docs.elotl.co/luna/v0.4/configuration: "pods with any of the labels will be considered".
    _, sets = CASES["label-list"]
    objects = template(current_version(), (), sets)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        *by_label, _opted_in = one(objects, kind)["webhooks"]
        assert sorted(selected_labels(hook["objectSelector"]) for hook in by_label) == [
            ("key1", frozenset({"value1", "other"})),
            ("key2", frozenset({"value2"})),
        ]
        assert len({hook["name"] for hook in by_label}) == 2


def test_pod_annotations_send_pods_without_the_labels_to_the_webhook() -> None:
    # An object selector cannot read annotations: pods carrying no label key go to the
    # webhook, which reads podAnnotations.
    objects = template(current_version(), (), ("podAnnotations=team.io/autoscale=luna",))
    for kind, path in (
        ("MutatingWebhookConfiguration", "/mutate"),
        ("ValidatingWebhookConfiguration", "/validate"),
    ):
        (hook,) = [
            h for h in one(objects, kind)["webhooks"] if h["name"] == "annotations.pods.gibbous.dev"
        ]
        assert hook["clientConfig"]["service"]["path"] == path
        assert hook["objectSelector"] == {
            "matchExpressions": [{"key": "elotl-luna", "operator": "DoesNotExist"}]
        }
    plain = template(current_version())
    assert "annotations.pods.gibbous.dev" not in {
        h["name"] for h in one(plain, "MutatingWebhookConfiguration")["webhooks"]
    }


def test_p18s_collector_sidecar_reads_the_directory_the_autoscaler_writes() -> None:
    objects = template(current_version(), *CASES["otel-sidecar"])
    pod = one(objects, "Deployment", "-autoscaler")["spec"]["template"]["spec"]
    autoscaler, collector = pod["containers"]
    assert collector["name"] == "opentelemetry-collector"
    config = build_config(
        yaml.safe_load(one(objects, "ConfigMap", "gibbous-config")["data"]["config.yaml"])
    )
    assert config.logging.directory == "/logs"
    mounts = {m["name"]: m["mountPath"] for m in autoscaler["volumeMounts"]}
    assert mounts["logs"] == "/logs"
    assert {"name": "logs", "mountPath": "/logs"} in collector["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["logs"]["emptyDir"] == {"sizeLimit": "500Mi"}
    # at most the current file and maxFiles rotated ones, inside the volume's 500Mi
    assert config.logging.max_file_bytes * (1 + config.logging.max_files) <= 500 * 2**20
    # docs/coming-from-luna.md shows the same setup
    (shown,) = fenced_blocks(
        "docs/coming-from-luna.md", "Logs for an OpenTelemetry collector sidecar (P18)", "yaml"
    )
    example = yaml.safe_load(CASES["otel-sidecar"][0][0].read_text())
    assert yaml.safe_load(shown)["autoscaler"] == example["autoscaler"]
    assert yaml.safe_load(shown)["logging"]["directory"] == example["logging"]["directory"]

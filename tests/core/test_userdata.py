"""User data per kind, checked by parsing it back the way the node's bootstrap reads it: MIME
parts as cloud-init and nodeadm split them, TOML as Bottlerocket reads it, the RKE2 config
as YAML. Labels and taints must arrive exactly; the operator's own parts must survive."""

from __future__ import annotations

import email
import email.policy
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gibbous.core.errors import ConfigError
from gibbous.core.grammar.gotemplate import TemplateError, parse_template
from gibbous.core.settings.kubeletlabels import kubelet_may_set
from gibbous.core.settings.userdata import (
    ClusterInfo,
    NodeBootstrap,
    UserDataType,
    check_user_data,
    render_user_data,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "userdata"
CLUSTER = ClusterInfo("prod", "https://ABC.gr7.us-west-2.eks.amazonaws.com", "Y2VydA==", "10.100.0.0/16")  # fmt: skip
LABELS = {
    "node.elotl.co/created-by": "gibbous",
    "gibbous.dev/placement": "bin-select",
    "gibbous.dev/assigned-pod-uid": "0b9f3f1e-4c1a-4d5e-9a57-2f7b1c3d4e5f",
    "node.kubernetes.io/instance-type": "g4dn.xlarge",
    "topology.kubernetes.io/zone": "us-west-2a",
    "karpenter.sh/capacity-type": "spot",
}
SPOT = {"key": "gibbous.dev/capacity-type", "value": "spot", "effect": "NoSchedule"}
NODE = NodeBootstrap(LABELS, (SPOT,), max_pods=29)
OPERATOR_SCRIPT = "#!/bin/bash\necho 'operator part' > /etc/motd\n"


def parts_of(text: str) -> list[tuple[str, str]]:
    message = email.message_from_string(text, policy=email.policy.default)
    assert message.is_multipart()
    return [(part.get_content_type(), str(part.get_payload())) for part in message.iter_parts()]


def flag_values(flags: list[str], name: str) -> str:
    (value,) = [f.split("=", 1)[1] for f in flags if f.startswith(f"--{name}=")]
    return value


def test_al2023_is_a_nodeconfig_first_and_the_operators_parts_after() -> None:
    parts = parts_of(render_user_data(UserDataType.AL2023, OPERATOR_SCRIPT, CLUSTER, NODE))
    (kind, body), (operator_kind, operator_body) = parts
    assert kind == "application/node.eks.aws"
    config = yaml.safe_load(body)  # nodeadm reads YAML; JSON is YAML
    assert config["apiVersion"] == "node.eks.aws/v1alpha1" and config["kind"] == "NodeConfig"
    assert config["spec"]["cluster"] == {
        "name": "prod",
        "apiServerEndpoint": CLUSTER.endpoint,
        "certificateAuthority": "Y2VydA==",
        "cidr": "10.100.0.0/16",
    }
    flags = config["spec"]["kubelet"]["flags"]
    labels = dict(item.split("=", 1) for item in flag_values(flags, "node-labels").split(","))
    assert labels == LABELS
    assert flag_values(flags, "register-with-taints") == "gibbous.dev/capacity-type=spot:NoSchedule"
    assert config["spec"]["kubelet"]["config"]["maxPods"] == 29
    assert (
        operator_kind == "text/x-shellscript" and operator_body.strip() == OPERATOR_SCRIPT.strip()
    )


def test_al2023_keeps_every_part_of_an_operators_multipart() -> None:
    operator = (FIXTURES / "al2023-operator.mime").read_text()
    parts = parts_of(render_user_data(UserDataType.AL2023, operator, CLUSTER, NODE))
    assert [kind for kind, _ in parts] == [
        "application/node.eks.aws",
        "application/node.eks.aws",
        "text/x-shellscript",
    ]
    theirs = yaml.safe_load(parts[1][1])
    assert theirs["spec"]["kubelet"]["config"]["clusterDNS"] == ["10.100.0.10"]


def test_labels_the_kubelet_may_not_set_are_left_to_the_autoscaler() -> None:
    assert kubelet_may_set("node.elotl.co/created-by")
    assert kubelet_may_set("node.kubernetes.io/instance-type")
    assert kubelet_may_set("kubernetes.io/arch") and kubelet_may_set("topology.kubernetes.io/zone")
    assert not kubelet_may_set("node-role.kubernetes.io/gpu")
    assert not kubelet_may_set("kubernetes.io/team")
    assert not kubelet_may_set("example.k8s.io/x")
    node = NodeBootstrap({**LABELS, "node-role.kubernetes.io/gpu": ""}, ())
    text = render_user_data(UserDataType.AL2023, "", CLUSTER, node)
    assert "node-role.kubernetes.io" not in text


def test_bottlerocket_merges_into_the_operators_settings() -> None:
    operator = (FIXTURES / "bottlerocket-operator.toml").read_text()
    settings = tomllib.loads(render_user_data(UserDataType.BOTTLEROCKET, operator, CLUSTER, NODE))
    kubernetes = settings["settings"]["kubernetes"]
    assert kubernetes["api-server"] == "https://operator.example"  # the operator's wins
    assert kubernetes["cluster-name"] == "prod" and kubernetes["cluster-certificate"] == "Y2VydA=="
    assert kubernetes["node-labels"] == {"team": "ml", **LABELS}
    assert kubernetes["node-taints"] == {
        "dedicated": ["gpu:NoSchedule"],
        "gibbous.dev/capacity-type": ["spot:NoSchedule"],
    }
    assert kubernetes["max-pods"] == 29
    assert settings["settings"]["host-containers"]["admin"]["enabled"] is True


def test_al2_calls_bootstrap_with_the_kubelet_flags_after_the_operators_parts() -> None:
    parts = parts_of(render_user_data(UserDataType.AL2, OPERATOR_SCRIPT, CLUSTER, NODE))
    assert parts[0][1].strip() == OPERATOR_SCRIPT.strip()
    script = parts[1][1]
    command = shlex.split(script.splitlines()[-1])
    assert command[:2] == ["/etc/eks/bootstrap.sh", "prod"]
    extra = shlex.split(command[command.index("--kubelet-extra-args") + 1])
    labels = dict(item.split("=", 1) for item in flag_values(extra, "node-labels").split(","))
    assert labels == LABELS and "--max-pods=29" in extra
    assert command[command.index("--b64-cluster-ca") + 1] == "Y2VydA=="


def rke2_config(text: str) -> dict[str, Any]:
    body = re.search(r"cat <<EOF > /etc/rancher/rke2/config.yaml\n(.*?)\nEOF\n", text, re.DOTALL)
    assert body is not None
    config: dict[str, Any] = yaml.safe_load(body.group(1))
    return config


def test_lunas_rke2_template_renders_a_valid_agent_config() -> None:
    template = (FIXTURES / "rke2-template.sh").read_text()
    check_user_data(UserDataType.TEMPLATE, template)
    config = rke2_config(render_user_data(UserDataType.TEMPLATE, template, CLUSTER, NODE))
    assert config["server"] == "https://10.0.0.5:9345"
    assert dict(item.split("=", 1) for item in config["node-label"]) == LABELS
    assert config["node-taint"] == ["gibbous.dev/capacity-type=spot:NoSchedule"]
    assert config["kubelet-arg"] == "--max-pods=29"
    plain = rke2_config(
        render_user_data(UserDataType.TEMPLATE, template, CLUSTER, NodeBootstrap(LABELS))
    )
    assert "node-taint" not in plain and "kubelet-arg" not in plain


def test_none_leaves_the_operators_user_data_alone() -> None:
    assert render_user_data(UserDataType.NONE, OPERATOR_SCRIPT, CLUSTER, NODE) == OPERATOR_SCRIPT


@pytest.mark.parametrize(
    ("kind", "operator", "message"),
    [
        (UserDataType.TEMPLATE, "{{ range .Labels }}", "missing {{ end }}"),
        (UserDataType.TEMPLATE, "{{ .Labels | quote }}", "pipelines"),
        (UserDataType.TEMPLATE, "{{ .Nodes }}", "no field 'Nodes'"),
        (UserDataType.TEMPLATE, '{{ printf "%s" .MaxPods }}', "not supported"),
        (UserDataType.TEMPLATE, "", "needs aws.userData"),
        (UserDataType.BOTTLEROCKET, "[settings.kubernetes\n", "not valid Bottlerocket TOML"),
    ],
)
def test_bad_user_data_stops_gibbous_at_start(
    kind: UserDataType, operator: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_user_data(kind, operator)


def test_bad_labels_and_taints_are_refused() -> None:
    for labels, taints in (
        ({"bad key!": "x"}, ()),
        ({"ok": "bad,value"}, ()),
        ({}, ({"key": "k", "value": "v", "effect": "Sometimes"},)),
    ):
        with pytest.raises(ConfigError):
            render_user_data(UserDataType.AL2023, "", CLUSTER, NodeBootstrap(labels, taints))


DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?"
LABEL_NAMES = st.from_regex(rf"({DNS_LABEL}(\.{DNS_LABEL}){{0,2}}/)?{NAME}", fullmatch=True)
LABEL_VALUES = st.from_regex(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?)?", fullmatch=True)


@given(st.dictionaries(LABEL_NAMES, LABEL_VALUES, min_size=1, max_size=6))
def test_any_valid_labels_arrive_exactly_in_every_kind(labels: dict[str, str]) -> None:
    wanted = {k: v for k, v in labels.items() if kubelet_may_set(k)}
    node = NodeBootstrap(labels, (SPOT,))
    config = yaml.safe_load(
        parts_of(render_user_data(UserDataType.AL2023, "", CLUSTER, node))[0][1]
    )
    flags = config["spec"]["kubelet"]["flags"]
    got = (
        dict(item.split("=", 1) for item in flag_values(flags, "node-labels").split(","))
        if wanted
        else {}
    )
    assert got == wanted
    toml = tomllib.loads(render_user_data(UserDataType.BOTTLEROCKET, "", CLUSTER, node))
    assert toml["settings"]["kubernetes"]["node-labels"] == wanted


def test_templates_follow_go_semantics() -> None:
    data = {"Labels": {"b": "2", "a": "1"}, "Taints": [], "MaxPods": 0, "Name": "n"}

    def render(source: str) -> str:
        return parse_template(source).render(data)

    assert render("{{ range $k, $v := .Labels }}{{ $k }}={{ $v }};{{ end }}") == "a=1;b=2;"
    assert render("{{ range .Taints }}x{{ else }}none{{ end }}") == "none"
    assert render('{{ if eq .Name "n" }}yes{{ else if .MaxPods }}no{{ end }}') == "yes"
    assert render("a  {{- .Name -}}  b") == "anb"
    assert render("{{ len .Labels }} {{ not .MaxPods }} {{/* comment */}}") == "2 true "
    assert render("{{ and .Name .MaxPods }}|{{ or .MaxPods .Name }}") == "0|n"
    with pytest.raises(TemplateError, match="incompatible types"):
        render("{{ gt .Name 0 }}")
    assert render('{{ "a\\"b\\n" }}') == 'a"b\n'

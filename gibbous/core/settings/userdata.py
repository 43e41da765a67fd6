"""EC2 user data that makes a new node register with Gibbous's labels, taints and max-pods.

EC2 tags never become Node labels: the kubelet sets labels and taints at registration from
its own flags, so every launch carries user data rendered for its node. The kinds
(`aws.userDataType`):

* `AL2023` (default): a MIME multipart whose first part is a nodeadm `NodeConfig`
  (`application/node.eks.aws`) with the cluster's endpoint, CA and service CIDR and the
  kubelet flags `--node-labels`, `--register-with-taints` and `maxPods`; the operator's own
  user data follows, part by part (nodeadm merges every NodeConfig part it finds).
* `Bottlerocket`: the operator's TOML with `[settings.kubernetes]` completed (cluster name,
  API server, certificate, where the operator did not set them), `node-labels`,
  `node-taints` and `max-pods` merged in.
* `AL2`: a MIME multipart of the operator's parts and a script that calls
  `/etc/eks/bootstrap.sh` with `--kubelet-extra-args` (the operator's parts must not call
  bootstrap.sh themselves).
* `Template`: Luna's; `aws.userData` is a Go template over `.Labels` (a map), `.Taints`
  (`key=value:Effect` strings) and `.MaxPods` (0 = unset), e.g. an RKE2 agent's config.
* `None`: the operator's user data, untouched (nodes register without Gibbous's labels and
  taints; Gibbous patches them on after registration and says so).

Pure: the caller base64-encodes the result for RunInstances.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

from gibbous.core.errors import ConfigError
from gibbous.core.grammar.gotemplate import TemplateError, parse_template
from gibbous.core.settings.kubeletlabels import kubelet_may_set


class UserDataType(StrEnum):
    AL2023 = "AL2023"
    BOTTLEROCKET = "Bottlerocket"
    AL2 = "AL2"
    TEMPLATE = "Template"
    NONE = "None"


@dataclass(frozen=True)
class ClusterInfo:
    """What a kubelet needs to join: from `eks:DescribeCluster`, or configured."""

    name: str
    endpoint: str = ""
    certificate_authority: str = ""  # base64 PEM, as DescribeCluster returns it
    service_cidr: str = ""


@dataclass(frozen=True)
class NodeBootstrap:
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...] = ()
    max_pods: int = 0  # 0: the kubelet's own default


# Label syntax (k8s.io/apimachinery validation): [prefix/]name, name <= 63 characters of
# [A-Za-z0-9._-] starting and ending alphanumeric, prefix a DNS subdomain <= 253.
_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
_KEY = re.compile(rf"({_PREFIX}/)?{_NAME}")
_VALUE = re.compile(rf"({_NAME})?")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def check_label(key: str, value: str) -> None:
    if not _KEY.fullmatch(key) or len(key) > 316:
        raise ConfigError(f"node label key {key!r} is not a valid Kubernetes label key")
    if not _VALUE.fullmatch(value):
        raise ConfigError(f"node label {key}: value {value!r} is not a valid label value")


def taint_text(taint: Mapping[str, str]) -> str:
    """`key=value:Effect` (or `key:Effect`), as --register-with-taints takes it."""
    key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect", "")
    check_label(key, value)
    if effect not in _EFFECTS:
        raise ConfigError(f"taint {key}: effect {effect!r} is not one of {', '.join(_EFFECTS)}")
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def kubelet_flags(node: NodeBootstrap) -> list[str]:
    """`--node-labels=...` and `--register-with-taints=...` for what the kubelet may set."""
    for key, value in node.labels.items():
        check_label(key, value)
    labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()) if kubelet_may_set(k))
    flags = [f"--node-labels={labels}"] if labels else []
    if node.taints:
        flags.append("--register-with-taints=" + ",".join(taint_text(t) for t in node.taints))
    return flags


# --- MIME multipart (AL2023, AL2) ------------------------------------------------------------

_BOUNDARY = "==GIBBOUS-BOUNDARY=="


def _part(content_type: str, text: str) -> EmailMessage:
    """A MIME part as EKS's own examples write them: a Content-Type and the text as is."""
    part = EmailMessage()
    part["Content-Type"] = content_type
    part.set_payload(text if text.endswith("\n") else text + "\n")
    return part


def _operator_parts(text: str) -> list[EmailMessage]:
    """The operator's user data as MIME parts: its own parts when it is a multipart, else
    one part typed by its first line."""
    if not text.strip():
        return []
    if text.lstrip().lower().startswith(("mime-version", "content-type")):
        message = email.message_from_string(text, policy=email.policy.default)
        if message.is_multipart():
            return [part for part in message.iter_parts() if isinstance(part, EmailMessage)]
        if isinstance(message, EmailMessage):
            return [message]
    if text.startswith("#cloud-config"):
        return [_part("text/cloud-config", text)]
    if "node.eks.aws/" in text and "NodeConfig" in text:
        return [_part("application/node.eks.aws", text)]
    return [_part('text/x-shellscript; charset="us-ascii"', text)]


def _multipart(first: list[EmailMessage], parts: list[EmailMessage]) -> str:
    message = EmailMessage()
    message["MIME-Version"] = "1.0"
    message.set_type("multipart/mixed")
    everything = [*first, *parts]
    boundary = _BOUNDARY
    while any(boundary in part.as_string() for part in everything):
        boundary = "=" + boundary + "="
    message.set_boundary(boundary)
    for part in everything:
        message.attach(part)
    return message.as_string()


def _nodeconfig(cluster: ClusterInfo, node: NodeBootstrap) -> EmailMessage:
    spec: dict[str, Any] = {
        "cluster": {
            key: value
            for key, value in (
                ("name", cluster.name),
                ("apiServerEndpoint", cluster.endpoint),
                ("certificateAuthority", cluster.certificate_authority),
                ("cidr", cluster.service_cidr),
            )
            if value
        },
        "kubelet": {"flags": kubelet_flags(node)},
    }
    if node.max_pods:
        spec["kubelet"]["config"] = {"maxPods": node.max_pods}
    document = {"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": spec}
    # JSON is YAML: nodeadm reads it as such.
    return _part("application/node.eks.aws", json.dumps(document, indent=2))


def _al2_script(cluster: ClusterInfo, node: NodeBootstrap) -> EmailMessage:
    extra = " ".join(
        kubelet_flags(node) + ([f"--max-pods={node.max_pods}"] if node.max_pods else [])
    )
    command = ["/etc/eks/bootstrap.sh", cluster.name]
    if cluster.endpoint:
        command += ["--apiserver-endpoint", cluster.endpoint]
    if cluster.certificate_authority:
        command += ["--b64-cluster-ca", cluster.certificate_authority]
    if node.max_pods:
        command += ["--use-max-pods", "false"]
    command += ["--kubelet-extra-args", extra]
    script = "#!/bin/bash\nset -o errexit\n" + " ".join(shlex.quote(c) for c in command)
    return _part('text/x-shellscript; charset="us-ascii"', script)


# --- Bottlerocket TOML -------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_value(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # TOML basic strings take JSON's escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v, where)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ConfigError(f"Bottlerocket user data: {where} holds a value TOML output cannot take")


def to_toml(document: Mapping[str, Any], path: Sequence[str] = ()) -> str:
    """A TOML document: scalars and arrays first, then one [table] per nested mapping."""
    lines = []
    tables = []
    for key, value in document.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value, '.'.join([*path, key]))}")
    out = ""
    if lines or (path and not tables):
        header = f"[{'.'.join(_toml_key(p) for p in path)}]\n" if path else ""
        out += header + "\n".join(lines) + ("\n" if lines else "")
    for key, table in tables:
        chunk = to_toml(table, [*path, key])
        out += ("\n" if out else "") + chunk
    return out


def _bottlerocket(operator: str, cluster: ClusterInfo, node: NodeBootstrap) -> str:
    try:
        document: dict[str, Any] = tomllib.loads(operator) if operator.strip() else {}
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"aws.userData is not valid Bottlerocket TOML: {error}") from None
    kubernetes = document.setdefault("settings", {}).setdefault("kubernetes", {})
    if not isinstance(kubernetes, dict):
        raise ConfigError("aws.userData: settings.kubernetes must be a table")
    for key, value in (
        ("cluster-name", cluster.name),
        ("api-server", cluster.endpoint),
        ("cluster-certificate", cluster.certificate_authority),
    ):
        if value and key not in kubernetes:
            kubernetes[key] = value
    for key, value in node.labels.items():
        check_label(key, value)
    labels = kubernetes.setdefault("node-labels", {})
    labels.update({k: v for k, v in sorted(node.labels.items()) if kubelet_may_set(k)})
    taints = kubernetes.setdefault("node-taints", {})
    for taint in node.taints:
        taint_text(taint)  # validated as the kubelet flag would be
        entry = f"{taint.get('value', '')}:{taint['effect']}"
        existing = taints.setdefault(taint["key"], [])
        if entry not in existing:
            existing.append(entry)
    if node.max_pods:
        kubernetes["max-pods"] = node.max_pods
    return to_toml(document)


# --- the entry points ---------------------------------------------------------------------------


# EC2: "User data is limited to 16 KB, in raw form, before it is base64-encoded"
# (Amazon EC2 User Guide, "Work with instance user data"). boto3 encodes the text as UTF-8
# and then base64 for RunInstances, so the bytes counted are the UTF-8 bytes.
MAX_USER_DATA_BYTES = 16 * 1024


def render_user_data(
    kind: UserDataType, operator: str, cluster: ClusterInfo, node: NodeBootstrap
) -> str:
    """The user data for one node (text; the caller base64-encodes it). Raises ConfigError
    when it is more than EC2 takes."""
    text = _render(kind, operator, cluster, node)
    size = len(text.encode("utf-8"))
    if size > MAX_USER_DATA_BYTES:
        raise ConfigError(
            f"aws.userData: the user data for this node is {size} bytes, more than EC2's "
            f"limit of {MAX_USER_DATA_BYTES} bytes (16 KB before base64)"
        )
    return text


def _render(kind: UserDataType, operator: str, cluster: ClusterInfo, node: NodeBootstrap) -> str:
    if kind is UserDataType.NONE:
        return operator
    if kind is UserDataType.AL2023:
        return _multipart([_nodeconfig(cluster, node)], _operator_parts(operator))
    if kind is UserDataType.AL2:
        return _multipart(_operator_parts(operator), [_al2_script(cluster, node)])
    if kind is UserDataType.BOTTLEROCKET:
        return _bottlerocket(operator, cluster, node)
    for key, value in node.labels.items():
        check_label(key, value)
    try:
        return parse_template(operator).render(
            {
                "Labels": {k: v for k, v in node.labels.items() if kubelet_may_set(k)},
                "Taints": [taint_text(t) for t in node.taints],
                "MaxPods": node.max_pods,
            }
        )
    except TemplateError as error:
        raise ConfigError(f"aws.userData template: {error}") from None


SAMPLE_NODE = NodeBootstrap(
    labels={"node.elotl.co/created-by": "gibbous", "gibbous.dev/placement": "bin-pack"},
    taints=({"key": "gibbous.dev/capacity-type", "value": "spot", "effect": "NoSchedule"},),
    max_pods=110,
)


def check_user_data(kind: UserDataType, operator: str) -> None:
    """Render once for a sample node at start, so a bad template, TOML or MIME document stops
    Gibbous with a message instead of failing the first launch."""
    if kind is UserDataType.TEMPLATE and not operator.strip():
        raise ConfigError("aws.userDataType Template needs aws.userData (the template)")
    try:
        render_user_data(
            kind, operator, ClusterInfo("sample", "https://sample", "Y2E="), SAMPLE_NODE
        )
    except ConfigError:
        raise
    except (ValueError, LookupError, TypeError) as error:
        raise ConfigError(f"aws.userData ({kind}) cannot be rendered: {error}") from None

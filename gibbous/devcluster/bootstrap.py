"""What a node's bootstrap makes of its EC2 user data: the labels, taints and max-pods its
kubelet registers with. Read the way the real thing reads it, independently of how Gibbous
writes it, so a wrong user data shows up as a node without labels:

* nodeadm (AL2023): every `application/node.eks.aws` part of a MIME multipart is a
  NodeConfig; their `kubelet.flags` are concatenated and `kubelet.config` merged, later
  parts winning;
* Bottlerocket: TOML `settings.kubernetes.node-labels`, `node-taints`, `max-pods`;
* AL2: the `/etc/eks/bootstrap.sh` call's `--kubelet-extra-args` in a shell script part;
* RKE2 (Luna's template): `/etc/rancher/rke2/config.yaml` written by the script, with its
  `node-label`, `node-taint` and `kubelet-arg` entries.

Anything else registers a bare node.
"""

from __future__ import annotations

import email
import email.policy
import re
import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from gibbous.core.admission.mutation import parse_taint


@dataclass(frozen=True)
class Registration:
    source: str  # nodeadm, bottlerocket, bootstrap.sh, rke2, none
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    max_pods: int = 0


def _flag_values(flags: Iterable[str]) -> dict[str, str]:
    """`--name=value` and `--name value` kubelet flags, last one winning."""
    out: dict[str, str] = {}
    items = list(flags)
    index = 0
    while index < len(items):
        item = items[index]
        if item.startswith("--"):
            name, sep, value = item[2:].partition("=")
            if not sep and index + 1 < len(items) and not items[index + 1].startswith("--"):
                value = items[index + 1]
                index += 1
            out[name] = value
        index += 1
    return out


def _labels(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def _from_flags(source: str, flags: dict[str, str], max_pods: int = 0) -> Registration:
    taints = [parse_taint(t) for t in flags.get("register-with-taints", "").split(",") if t]
    pods = int(flags["max-pods"]) if flags.get("max-pods", "").isdigit() else max_pods
    return Registration(source, _labels(flags.get("node-labels", "")), taints, pods)


def _merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in more.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def _nodeadm(parts: list[tuple[str, str]]) -> Registration | None:
    configs = [
        document
        for kind, body in parts
        if kind == "application/node.eks.aws"
        for document in yaml.safe_load_all(body)
        if isinstance(document, dict) and document.get("kind") == "NodeConfig"
    ]
    if not configs:
        return None
    flags: list[str] = []
    kubelet_config: dict[str, Any] = {}
    for config in configs:
        kubelet = (config.get("spec") or {}).get("kubelet") or {}
        flags.extend(str(f) for f in kubelet.get("flags") or [])
        kubelet_config = _merge(kubelet_config, kubelet.get("config") or {})
    return _from_flags("nodeadm", _flag_values(flags), int(kubelet_config.get("maxPods") or 0))


def _bootstrap_sh(script: str) -> Registration | None:
    for line in script.splitlines():
        if "/etc/eks/bootstrap.sh" not in line:
            continue
        words = shlex.split(line)
        if "--kubelet-extra-args" not in words:
            return Registration("bootstrap.sh")
        extra = shlex.split(words[words.index("--kubelet-extra-args") + 1])
        return _from_flags("bootstrap.sh", _flag_values(extra))
    return None


_RKE2 = re.compile(r"cat <<\s*'?EOF'?\s*>\s*/etc/rancher/rke2/config\.yaml\n(.*?)\nEOF", re.DOTALL)


def _rke2(script: str) -> Registration | None:
    match = _RKE2.search(script)
    if match is None:
        return None
    config = yaml.safe_load(match.group(1)) or {}
    labels = _labels(",".join(config.get("node-label") or []))
    taints = [parse_taint(t) for t in config.get("node-taint") or []]
    extra = config.get("kubelet-arg") or []
    flags = _flag_values([extra] if isinstance(extra, str) else extra)
    pods = int(flags["max-pods"]) if flags.get("max-pods", "").isdigit() else 0
    return Registration("rke2", labels, taints, pods)


def _bottlerocket(text: str) -> Registration | None:
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    kubernetes = (settings.get("settings") or {}).get("kubernetes")
    if not isinstance(kubernetes, dict):
        return None
    taints = []
    for key, values in (kubernetes.get("node-taints") or {}).items():
        for entry in values:
            value, _, effect = str(entry).rpartition(":")
            taints.append(
                {"key": key, "value": value, "effect": effect}
                if value
                else {"key": key, "effect": effect}
            )
    return Registration(
        "bottlerocket",
        {str(k): str(v) for k, v in (kubernetes.get("node-labels") or {}).items()},
        taints,
        int(kubernetes.get("max-pods") or 0),
    )


def read_bootstrap(user_data: str) -> Registration:
    """What the node registers with, from its user data (see the module doc)."""
    text = user_data.strip()
    if text.lower().startswith(("mime-version", "content-type")):
        message = email.message_from_string(user_data, policy=email.policy.default)
        parts = [
            (part.get_content_type(), str(part.get_payload()))
            for part in (message.iter_parts() if message.is_multipart() else [message])
        ]
        found = _nodeadm(parts)
        if found is not None:
            return found
        for kind, body in parts:
            if kind == "text/x-shellscript":
                script = _bootstrap_sh(body) or _rke2(body)
                if script is not None:
                    return script
        return Registration("none")
    if text.startswith("#!"):
        return _bootstrap_sh(text) or _rke2(user_data) or Registration("none")
    return _bottlerocket(text) or Registration("none")

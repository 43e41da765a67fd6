"""Reading Luna's values files as they are: the install settings of a Helm values file,
and Luna's spellings of options where they differ from ours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gibbous.core.settings.options import OPTIONS

# Top-level keys of a Helm values file (Luna's chart or Gibbous's, charts/gibbous) that
# set up the install rather than Gibbous: a values file loads as it is, and these are
# named as not applicable. The chart leaves exactly these out of the configuration it
# renders (a test keeps the two lists equal).
INSTALL_KEYS: Mapping[str, str] = {
    "image": "the image the chart runs",
    "imagePullSecretName": "Luna's pull secret for the image",
    "imagePullSecrets": "pull secrets for the image",
    "manager": "Luna's manager pod settings (envFrom, env: the autoscaler's environment)",
    "nameOverride": "the chart's object names",
    "fullnameOverride": "the chart's object names",
    "priorityClassName": "the priority class of Gibbous's pods",
    "nodeSelector": "where Gibbous's pods run",
    "tolerations": "where Gibbous's pods run",
    "webhook": "the webhook's replicas, resources and TLS",
    "extender": "the extender's replicas and resources",
    "scheduler": "the secondary scheduler's replicas, image and resources",
    "networkPolicy": "the NetworkPolicies of Gibbous's pods",
    "autoscaler": "the autoscaler's provider, replicas, resources and service account",
    "monitoring": "the Grafana dashboard and the Prometheus Operator PodMonitor",
}

# Spellings the posts use that differ from ours (P20's `NodeTTL`): accepted as ours.
LUNA_SPELLINGS: Mapping[str, str] = {
    option.luna: option.key for option in OPTIONS if option.luna and option.luna != option.key
}


def install_settings(document: Mapping[str, Any]) -> list[str]:
    """The keys of a values file that configure the Helm install, not Gibbous."""
    return [key for key in document if key in INSTALL_KEYS]

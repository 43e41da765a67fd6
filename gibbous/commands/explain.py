"""`gibbous explain`: why a pod is pending (or where it went), as Gibbous sees it."""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from gibbous.commands.options import (
    EXIT_OK,
    add_config_options,
    add_status_options,
    config_epilog,
)
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "explain"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        NAME,
        help="explain what Gibbous sees and decides for a pod in a live cluster",
        description=(
            "For a pod in a live cluster, say what Gibbous sees and decides, with the rules the "
            "autoscaler runs: whether the pod is managed and why (designation label or "
            "namespace, the pod.elotl.co/ignore opt-out, its scheduler), its class (bin-pack or "
            "bin-select) and effective requests, the existing nodes that could take it and the "
            "first rule ruling out each group of the others (grouped by instance type, labels "
            "and taints), the instance types it would buy, cheapest first, with the rule ruling "
            "out each other one, the back-offs and guardrails in the way, and the last decision "
            "for it (from the autoscaler's status object and the pod's events). Give the "
            "configuration the autoscaler runs with (--config takes the chart's values file). "
            "Where no autoscaler runs, or it stopped, it says so."
        ),
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pod", metavar="POD", help="the pod's name")
    parser.add_argument(
        "-n", "--namespace", default="default", help="its namespace (default default)"
    )
    parser.add_argument(
        "--catalog", metavar="FILE", help="instance catalog CSV (default: the built-in one)"
    )
    parser.add_argument(
        "--top", type=int, default=5, metavar="N", help="instance types listed (default 5)"
    )
    add_status_options(parser)
    add_config_options(parser)
    return parser


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    from kubernetes import client

    from gibbous.catalogs import load_catalog
    from gibbous.configfile import load_config
    from gibbous.core.choice.selection import build_offers
    from gibbous.core.lifecycle.explain import ClusterView, explain_pod, render_explanation
    from gibbous.core.planning.podfacts import ClusterPods
    from gibbous.kubeapi import load_client_config, read_status_document, split_namespaced
    from gibbous.listing import list_nodes, list_pods
    from gibbous.nodeviews import ViewCache

    config = load_config(args.config, list(args.overrides))
    namespace, name = split_namespaced(args.status_configmap, "--status-configmap")
    api = client.ApiClient(load_client_config(args.kubeconfig))
    core = client.CoreV1Api(api)
    try:
        pod = _raw(core.read_namespaced_pod(args.pod, args.namespace, _preload_content=False))
    except client.ApiException as error:
        if error.status == 404:
            raise ConfigError(f"pod {args.namespace}/{args.pod} not found") from None
        raise
    # Every object read here lives until the command ends: collections would only rescan
    # the growing heap (about half the time of listing 10,000 pods), so there are none.
    gc.disable()
    try:
        nodes = list_nodes(core)
        pods = ClusterPods(config.designation)
        pods.sync(list_pods(core, "status.phase!=Succeeded,status.phase!=Failed"))
    finally:
        gc.enable()
    uid = (pod.get("metadata") or {}).get("uid", "")
    events = (
        _raw(
            core.list_namespaced_event(
                args.namespace, field_selector=f"involvedObject.uid={uid}", _preload_content=False
            )
        ).get("items")
        or []
    )
    views = ViewCache(config.nvidia_gpu_time_slices)
    catalog = load_catalog(args.catalog, config.cloud, config.effective_region)
    view = ClusterView(
        nodes=[views.view(node) for node in nodes],
        pods=pods,
        offers=build_offers(catalog, config),
        events=events,
        status=read_status_document(api, namespace, name),
    )
    now = time.time()
    explanation = explain_pod(pod, view, config, now=now, top=max(1, args.top))
    if args.output == "json":
        stdout.write(orjson.dumps(explanation, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        stdout.write(render_explanation(explanation, now))
    return EXIT_OK


def _raw(response: Any) -> dict[str, Any]:
    """The API's JSON as it is (the client's models would turn times into datetimes)."""
    document: dict[str, Any] = json.loads(response.data)
    return document

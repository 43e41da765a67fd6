"""`gibbous status`: what the autoscaler is doing now, from its status object."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, TextIO

import orjson

from gibbous.commands.options import EXIT_OK, EXIT_UNSATISFIABLE, add_status_options
from gibbous.core.lifecycle.statusreport import render_status, staleness

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "status"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        NAME,
        help="show what the autoscaler is doing: launches, back-offs, guardrails, cost",
        description=(
            "Read the autoscaler's status object (a ConfigMap its leader rewrites when its state "
            "changes, and at least every minute) and show the launches in flight (type, zone, "
            "age, pods waiting for each), the back-offs with their end times, the guardrails' "
            "use against their limits (GPUs, nodes, $/hr), the nodes being drained and why, "
            "the $/hr of Gibbous's nodes by capacity type, and the scheduler routing state. "
            "Exit status: 0 the status is current, 3 there is no status object or it is stale "
            "(the autoscaler is not running, or not leading)."
        ),
    )
    add_status_options(parser)
    return parser


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    from kubernetes import client

    from gibbous.kubeapi import load_client_config, read_status_document, split_namespaced

    namespace, name = split_namespaced(args.status_configmap, "--status-configmap")
    api = client.ApiClient(load_client_config(args.kubeconfig))
    document = read_status_document(api, namespace, name)
    now = time.time()
    stale = staleness(document, now)
    if args.output == "json":
        out = {"status": document, "readAt": round(now, 3), "stale": stale or None}
        stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        stdout.write(f"status object {namespace}/{name}\n")
        stdout.write(render_status(document, now))
    return EXIT_UNSATISFIABLE if stale else EXIT_OK

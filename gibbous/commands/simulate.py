"""`gibbous simulate`: workload days replayed through Gibbous's loop and the peer policies."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gibbous.catalogs import load_catalog
from gibbous.commands.options import EXIT_OK, add_set_option, config_epilog
from gibbous.configfile import read_document
from gibbous.core.errors import ConfigError
from gibbous.core.settings.loader import build_config
from gibbous.core.settings.options.luna import INSTALL_KEYS

if TYPE_CHECKING:
    from collections.abc import Callable

    from gibbous.commands.options import Subcommands

NAME = "simulate"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    sim = commands.add_parser(
        NAME,
        help="replay a workload day through Gibbous's real loop and peer policies",
        description=(
            "Run each SCENARIO (a built-in name or a scenario file; format in "
            "gibbous/simulation/scenario.py and the README) on a virtual clock through Gibbous's "
            "own autoscaler loop and node lifecycle and the peer policies (Luna's bin-pack rule, "
            "Karpenter-like, Cluster-Autoscaler-like, static peak provisioning), against a "
            "simulated cloud (boot time, hangs, stock-outs, quota, spot interruptions) and cluster "
            "(kube-scheduler, kubelets, controllers, metrics). Reports total $, node-hours, "
            "pending times, time to capacity, evictions, interruptions, peak nodes and time above "
            "the red threshold. Built in: " + ", ".join(sorted(_scenario_names())) + "."
        ),
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    sim.add_argument(
        "--from-cluster",
        metavar="KUBECONFIG",
        help="also simulate a live cluster as the starting state: its pods and its nodes of "
        "catalog types (KUBECONFIG, or '' for in-cluster then ~/.kube/config)",
    )
    sim.add_argument(
        "--duration",
        default="24h",
        help="how long to simulate the --from-cluster state (default 24h)",
    )
    sim.add_argument(
        "--cloud",
        choices=("aws", "gcp", "azure", "oci"),
        help="run every scenario on this cloud's catalog instead of its own (and the "
        "--from-cluster cluster's cloud; default: from its nodes' providerIDs)",
    )
    sim.add_argument(
        "--policy",
        default="gibbous,luna-rule,karpenter-like,ca-like,static",
        help="comma-separated policies (default all: gibbous,luna-rule,karpenter-like,ca-like,static)",
    )
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--output", choices=("table", "json"), default="table", help="output format (default table)"
    )
    sim.add_argument(
        "--report",
        metavar="FILE.html",
        help="also write an HTML report with plots (one document, a section per scenario)",
    )
    sim.add_argument(
        "--config",
        metavar="FILE",
        help="Gibbous configuration (or a Helm values file) over each scenario's own options",
    )
    add_set_option(sim, "Gibbous configuration over the scenario's and --config's (repeatable)")
    sim.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on standard error (shown only when it is a terminal)",
    )
    sim.add_argument(
        "--verbose",
        action="store_true",
        help="log what the policies decide (launches, timeouts, evictions) on standard error",
    )
    return sim


def _scenario_names() -> list[str]:
    from gibbous.simulation.scenario import built_in

    return list(built_in())


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    from gibbous.simulation.engine import run as simulate
    from gibbous.simulation.policies import POLICIES
    from gibbous.simulation.report import as_json, html_report, table
    from gibbous.simulation.scenario import load_scenario

    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(message)s")
    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        raise ConfigError(f"--policy: unknown {unknown}; known: {', '.join(POLICIES)}")
    scenarios = [load_scenario(name) for name in args.scenarios]
    if args.cloud:
        scenarios = [dataclasses.replace(s, cloud=args.cloud) for s in scenarios]
    configuration = None
    if args.config:
        document = read_document(args.config)
        if not isinstance(document, dict):
            raise ConfigError(f"{args.config}: expected a mapping of Gibbous options")
        configuration = {k: v for k, v in document.items() if k not in INSTALL_KEYS}
    if args.from_cluster is not None:
        scenarios.append(_scenario_of_cluster(args))
    if not scenarios:
        raise ConfigError("simulate: name a SCENARIO or --from-cluster")
    # A bar redrawn with carriage returns is for a person at a terminal; a pipe or a log
    # file would keep every redraw (as the usual progress libraries decide too).
    show = not args.quiet and sys.stderr.isatty()
    pages: list[tuple[Any, list[Any]]] = []
    for scenario in scenarios:
        results = []
        for policy in policies:
            results.append(
                simulate(
                    scenario,
                    policy,
                    seed=args.seed,
                    overrides=list(args.overrides),
                    configuration=configuration,
                    progress=progress_bar(sys.stderr, scenario.name, policy) if show else None,
                )
            )
        if args.output == "json":
            stdout.write(as_json(scenario, results) + "\n")
        else:
            stdout.write(f"{scenario.name}: {scenario.description}\n\n{table(results)}\n")
        pages.append((scenario, results))
    if args.report:
        try:
            Path(args.report).write_text(html_report(pages), encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--report {args.report}: {error.strerror}") from None
    return EXIT_OK


def progress_bar(stream: TextIO, name: str, policy: str) -> Callable[[float], None]:
    """Draws `name policy [####   ]  40%` on one line of `stream`, ending it at 100%."""

    def draw(done: float) -> None:
        bar = "#" * int(done * 30)
        stream.write(f"\r{name} {policy:<15} [{bar:<30}] {done:4.0%}")
        if done >= 1:
            stream.write("\n")
        stream.flush()

    return draw


def _scenario_of_cluster(args: argparse.Namespace) -> Any:
    from kubernetes import client

    from gibbous.core.grammar.duration import parse_duration
    from gibbous.kubeapi import load_client_config
    from gibbous.simulation.scenario import cloud_of_nodes, scenario_from_cluster

    api = client.ApiClient(load_client_config(args.from_cluster or None))
    core = client.CoreV1Api(api)
    try:
        pods = api.sanitize_for_serialization(core.list_pod_for_all_namespaces().items)
        nodes = api.sanitize_for_serialization(core.list_node().items)
    except (client.ApiException, OSError) as error:
        raise ConfigError(f"--from-cluster: cannot read the cluster: {error}") from None
    cloud = args.cloud or cloud_of_nodes(nodes) or "aws"
    region = build_config({"cloudProvider": cloud}).effective_region
    return scenario_from_cluster(
        pods,
        nodes,
        duration_s=parse_duration(args.duration, "--duration"),
        cloud=cloud,
        catalog_names={t.name for t in load_catalog(None, cloud, region)},
        source=args.from_cluster or "the current cluster",
    )

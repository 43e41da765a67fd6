"""The `gibbous` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from gibbous import __version__
from gibbous.catalogs import load_catalog
from gibbous.configfile import load_config
from gibbous.core.config import describe_options, render_config
from gibbous.core.errors import GibbousError, ManifestError
from gibbous.core.estimate import estimate, expand_workloads
from gibbous.report import render_estimate

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNSATISFIABLE = 3


def _config_epilog() -> str:
    lines = [
        "configuration keys (YAML file, GIBBOUS_<key> env with dots as __, or --set key=value):"
    ]
    for key, default, help_text in describe_options():
        lines.append(f"  {key} (default {default!r}): {help_text}")
    return "\n".join(lines)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="YAML configuration file (Luna option names)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one configuration key, e.g. --set nvidiaGPUTimeSlices=2 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gibbous",
        description="Gibbous: just-in-time, right-sized, cheapest-possible nodes for Kubernetes GPU and AI workloads.",
    )
    parser.add_argument("--version", action="version", version=f"gibbous {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    est = commands.add_parser(
        "estimate",
        help="estimate the nodes and $/hr that manifests would need",
        description=(
            "Expand Pods, Deployments, ReplicaSets, StatefulSets, Jobs, CronJobs and KubeRay RayCluster/RayJob/"
            "RayService objects into pods, plan them on an empty cluster with Gibbous's packing and instance "
            "choice, and report per workload the class, instance type, price category, $/hr per node, node count "
            "and $/hr, plus the cluster total. DaemonSets and unknown kinds are skipped with a note. "
            "Exit status: 0 all pods placed, 2 bad input, 3 some pod unsatisfiable."
        ),
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    est.add_argument(
        "files", nargs="+", metavar="FILE", help="YAML manifest files, or - for standard input"
    )
    est.add_argument(
        "--cloud",
        choices=("aws", "gcp", "azure", "oci"),
        help="cloud (default: cloudProvider, aws)",
    )
    est.add_argument("--region", help="region (default: the cloud's catalog region)")
    est.add_argument(
        "--catalog",
        metavar="FILE",
        help="CSV catalog replacing the built-in one (header: cloud,region,instance_type,vcpu,memory_gib,"
        "gpu_count,gpu_sku,arch,on_demand_usd_per_hour,spot_usd_per_hour)",
    )
    _add_config_options(est)
    est.add_argument(
        "--output", choices=("table", "json"), default="table", help="output format (default table)"
    )

    cfg = commands.add_parser(
        "config",
        help="print the effective configuration",
        description="Print every configuration key with its effective value, after the file, environment and --set.",
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(cfg)
    return parser


def _read_documents(files: list[str], stdin: TextIO) -> list[tuple[str, list[Any]]]:
    out = []
    for name in files:
        try:
            text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as error:
            raise ManifestError(f"cannot read {name}: {error.strerror}") from None
        try:
            out.append((name, list(yaml.safe_load_all(text))))
        except yaml.YAMLError as error:
            raise ManifestError(f"{name}: not valid YAML: {error}") from None
    return out


def run_estimate(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    overrides = list(args.overrides)
    if args.cloud:
        overrides.insert(0, f"cloudProvider={args.cloud}")
    if args.region:
        overrides.insert(0, f"region={args.region}")
    config = load_config(args.config, overrides)
    catalog = load_catalog(args.catalog, config.cloud, config.effective_region)
    workloads = []
    notes: list[str] = []
    for name, documents in _read_documents(args.files, stdin):
        found, skipped = expand_workloads(documents, source=name)
        workloads.extend(found)
        notes.extend(skipped)
    catalog_name = args.catalog or f"built-in {config.cloud} catalog"
    report = estimate(workloads, catalog, config, catalog_name=catalog_name, notes=notes)
    if args.output == "json":
        stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        stdout.write(render_estimate(report))
    return EXIT_UNSATISFIABLE if report.unsatisfiable else EXIT_OK


def run_config(args: argparse.Namespace, stdout: TextIO) -> int:
    config = load_config(args.config, list(args.overrides))
    stdout.write(yaml.safe_dump(render_config(config), sort_keys=False))
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return EXIT_BAD_INPUT
    handlers = {
        "estimate": lambda: run_estimate(args, out, stdin or sys.stdin),
        "config": lambda: run_config(args, out),
    }
    try:
        return handlers[args.command]()
    except GibbousError as error:
        sys.stderr.write(f"gibbous {args.command}: error: {error}\n")
        return EXIT_BAD_INPUT

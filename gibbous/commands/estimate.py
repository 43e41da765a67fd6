"""`gibbous estimate`: the nodes and $/hr that manifests would need."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import yaml

from gibbous.catalogs import load_catalog
from gibbous.commands.options import (
    EXIT_NOTHING_ESTIMATED,
    EXIT_OK,
    EXIT_UNSATISFIABLE,
    EXIT_UNSUPPORTED,
    add_config_options,
    config_epilog,
)
from gibbous.configfile import load_config
from gibbous.core.errors import ManifestError
from gibbous.core.planning.estimate import estimate, expand_workloads
from gibbous.report import render_estimate

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "estimate"
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    est = commands.add_parser(
        NAME,
        help="estimate the nodes and $/hr that manifests would need",
        description=textwrap.fill(
            "Expand workloads into pods as their controllers create them: Pods, Deployments, "
            "ReplicaSets, StatefulSets, ReplicationControllers, Jobs and CronJobs; KubeRay "
            "RayCluster/RayJob/RayService (replicas clamped to min/max times numOfHosts, autoscaler "
            "and submitter containers or pods); Volcano Jobs (tasks x replicas); Kubeflow "
            "PyTorchJob/TFJob/MPIJob/XGBoostJob/PaddleJob/JAXJob (replica specs); Kubeflow Trainer "
            "TrainJobs whose runtime is in the input (numNodes, resourcesPerNode); JobSets "
            "(replicatedJobs x replicas x parallelism); LeaderWorkerSets (replicas x size: a leader "
            "and size-1 workers); Spark operator SparkApplications (a driver and executors, memory "
            "plus Spark's memory overhead). Kinds are recognised by API group and kind. Plan the "
            "pods on an empty cluster as kube-scheduler would place them (pod affinity, "
            "anti-affinity, hard topology spread) with Gibbous's packing and instance choice, and "
            "report per workload the class, instance type, price category, $/hr per node, node "
            "count and $/hr, plus the cluster total. DaemonSets are skipped with a note; other "
            "kinds are skipped with a note that they are not counted. Workloads that share a "
            "kind, namespace and name are told apart by file:document; an object with only "
            "generateName reads as PREFIX<generated>.",
            width=88,
        )
        + (
            "\n\nExit status:\n"
            "  0  every pod placed\n"
            "  2  bad input: unreadable YAML, or an object the API server would refuse\n"
            "     (the message names the file, object and field)\n"
            "  3  some pod is unsatisfiable: no type of the catalog can run it (the reason\n"
            "     names the first requirement no type meets)\n"
            "  4  nothing to estimate: the input holds no workload Gibbous counts\n"
            "  5  no pod is unsatisfiable, but some need what Gibbous cannot buy yet (TPUs,\n"
            "     MIG partitions, AMD GPUs, Neuron devices, DRA resource claims)"
        ),
        epilog=config_epilog(),
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
    add_config_options(est)
    est.add_argument(
        "--output", choices=("table", "json"), default="table", help="output format (default table)"
    )
    return est


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
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
    if not workloads:
        # A $0.00/hr total with status 0 would read as success to a script.
        sys.stderr.write(
            "gibbous estimate: nothing was estimated: the input holds no workload Gibbous "
            "counts (see the notes)\n"
        )
        return EXIT_NOTHING_ESTIMATED
    if report.unsatisfiable:
        return EXIT_UNSATISFIABLE
    return EXIT_UNSUPPORTED if report.unsupported else EXIT_OK


def _read_documents(files: list[str], stdin: TextIO) -> list[tuple[str, list[Any]]]:
    out = []
    for name in files:
        try:
            text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as error:
            raise ManifestError(f"cannot read {name}: {error.strerror}") from None
        try:
            # libyaml's loader, as kubectl's parser, takes what PyYAML's pure one refuses
            # (a trailing tab in a plain scalar).
            out.append((name, list(yaml.load_all(text, Loader=SAFE_LOADER))))
        except yaml.YAMLError as error:
            raise ManifestError(f"{name}: not valid YAML: {error}") from None
    return out

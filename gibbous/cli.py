"""The `gibbous` command."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import yaml

from gibbous import __version__
from gibbous.catalogs import load_catalog
from gibbous.configfile import load_config, read_document
from gibbous.core.errors import ConfigError, GibbousError, ManifestError
from gibbous.core.planning.estimate import estimate, expand_workloads
from gibbous.core.settings.config import Config
from gibbous.core.settings.crosschecks import config_notes
from gibbous.core.settings.loader import build_config, describe_options, render_config
from gibbous.core.settings.options.luna import INSTALL_KEYS, install_settings
from gibbous.report import render_estimate

if TYPE_CHECKING:
    from gibbous.certs.selfmanaged import SelfManagedCertificates
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.serving import Listen

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNSATISFIABLE = 3
EXIT_NOTHING_ESTIMATED = 4


def _config_epilog() -> str:
    lines = [
        "configuration keys (YAML file, GIBBOUS_<key> env with dots as __, or --set key=value):"
    ]
    for key, default, help_text in describe_options():
        lines.append(f"  {key} (default {default!r}): {help_text}")
    return "\n".join(lines)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (Luna option names; a Luna or Gibbous Helm values file "
        "is read as it is, its install settings left aside)",
    )
    _add_set_option(
        parser, "override one configuration key, e.g. --set nvidiaGPUTimeSlices=2 (repeatable)"
    )


def _add_set_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text
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
            "RayService objects into pods (KubeRay's counts: replicas clamped to min/max times numOfHosts, "
            "autoscaler and submitter containers or pods), plan them on an empty cluster as kube-scheduler "
            "would place them (pod affinity, anti-affinity, hard topology spread) with Gibbous's packing and "
            "instance choice, and report per workload the class, instance type, price category, $/hr per node, node count "
            "and $/hr, plus the cluster total. DaemonSets and unknown kinds are skipped with a note. "
            "Exit status: 0 all pods placed, 2 bad input, 3 some pod unsatisfiable, 4 nothing to "
            "estimate (no workload Gibbous counts in the input)."
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

    sim = commands.add_parser(
        "simulate",
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
        epilog=_config_epilog(),
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
    sim.add_argument("--report", metavar="FILE.html", help="also write an HTML report with plots")
    sim.add_argument(
        "--config",
        metavar="FILE",
        help="Gibbous configuration (or a Helm values file) over each scenario's own options",
    )
    _add_set_option(sim, "Gibbous configuration over the scenario's and --config's (repeatable)")
    sim.add_argument("--quiet", action="store_true", help="no progress on standard error")
    sim.add_argument(
        "--verbose",
        action="store_true",
        help="log what the policies decide (launches, timeouts, evictions) on standard error",
    )

    hook = commands.add_parser(
        "webhook",
        help="serve the mutating and validating admission webhook over HTTPS",
        description=(
            "Serve POST /mutate and POST /validate (AdmissionReview v1 for Pods), GET /healthz, /readyz "
            "and /metrics over HTTPS. The certificate is reloaded when its files change. Scheduling gates "
            "are only added when the API server supports them (>= 1.27)."
        ),
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(hook)
    hook.add_argument(
        "--listen",
        default="0.0.0.0:8443",
        metavar="HOST:PORT",
        help="address to serve on (default 0.0.0.0:8443)",
    )
    hook.add_argument("--tls-cert", required=True, metavar="FILE", help="serving certificate (PEM)")
    hook.add_argument("--tls-key", required=True, metavar="FILE", help="its private key (PEM)")
    hook.add_argument(
        "--scheduler-lease",
        default="gibbous/gibbous-scheduler",
        metavar="NAMESPACE/NAME",
        help="the Gibbous scheduler's leader-election Lease (as the shipped scheduler "
        "configuration names it); while it is not renewed, schedulerName is left unset so "
        "the default scheduler takes new pods ('' to always set it)",
    )
    hook.add_argument(
        "--scheduling-gates",
        choices=("auto", "on", "off"),
        default="auto",
        help="whether the API server supports scheduling gates: auto asks it for its version "
        "(in-cluster or --kubeconfig) and assumes off when it cannot tell (default auto)",
    )
    hook.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for the version check (default: in-cluster)",
    )
    hook.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    managed = hook.add_argument_group(
        "self-managed TLS",
        "keep the CA and serving certificate in a Secret, rotate them before expiry (old and new CA both in "
        "caBundle during the overlap) and write caBundle into the webhook configurations",
    )
    managed.add_argument(
        "--self-managed-certs", action="store_true", help="turn self-managed TLS on"
    )
    managed.add_argument(
        "--namespace",
        default="gibbous",
        help="namespace of the Secret and Service (default gibbous)",
    )
    managed.add_argument(
        "--service",
        default="gibbous-webhook",
        help="webhook Service name (default gibbous-webhook)",
    )
    managed.add_argument(
        "--secret", default="gibbous-webhook-tls", help="Secret name (default gibbous-webhook-tls)"
    )
    managed.add_argument(
        "--webhook-configuration",
        action="append",
        default=[],
        metavar="NAME",
        help="Mutating/ValidatingWebhookConfiguration whose caBundle to write (default <webhookConfigPrefix>gibbous)",
    )
    managed.add_argument(
        "--cert-check-interval",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how often to check for rotation (default 300)",
    )
    managed.add_argument("--ca-days", type=int, default=365, help="CA validity (default 365)")
    managed.add_argument(
        "--cert-days", type=int, default=90, help="serving certificate validity (default 90)"
    )

    ext = commands.add_parser(
        "extender",
        help="serve the kube-scheduler extender (filter and prioritize)",
        description=(
            "Serve POST /filter and POST /prioritize for kube-scheduler (both the full-NodeList and the "
            "nodeCacheCapable NodeNames form), GET /healthz, /readyz (ready once the node and pod caches "
            "are synced) and /metrics. Plain HTTP unless --tls-cert/--tls-key are given."
        ),
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(ext)
    ext.add_argument(
        "--listen",
        default="0.0.0.0:8888",
        metavar="HOST:PORT",
        help="address (default 0.0.0.0:8888)",
    )
    ext.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for the node and pod caches (default: in-cluster)",
    )
    ext.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    ext.add_argument("--tls-key", metavar="FILE", help="and this key")
    ext.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="with --tls-cert: answer only clients with a certificate this CA signed "
        "(kube-scheduler's extender tlsConfig certFile/keyFile)",
    )
    ext.add_argument(
        "--probe-listen",
        metavar="HOST:PORT",
        help="with --tls-cert: also serve GET /healthz, /readyz and /metrics in plain HTTP "
        "here (the kubelet's probes and Prometheus carry no client certificate)",
    )
    ext.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    scaler = commands.add_parser(
        "autoscaler",
        help="run the provisioning loop: pending managed pods become the cheapest nodes",
        description=(
            "Watch pods and nodes, and launch the cheapest instance types that fit the managed pods "
            "nothing can hold, through a cloud provider: kwok (Node objects in the API server, no "
            "cloud), aws (EC2, joining EKS), gcp (node pools on GKE), azure (agent pools on AKS) "
            "or oci (node pools on OKE). "
            "One replica leads through a "
            "coordination.k8s.io Lease. Serves GET /healthz, /readyz and /metrics."
        ),
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(scaler)
    scaler.add_argument(
        "--provider",
        required=True,
        choices=("kwok", "aws", "gcp", "azure", "oci"),
        help="where nodes come from",
    )
    scaler.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster, then ~/.kube/config)"
    )
    scaler.add_argument(
        "--listen",
        default="0.0.0.0:8080",
        metavar="HOST:PORT",
        help="health and metrics address (default 0.0.0.0:8080)",
    )
    scaler.add_argument(
        "--period", type=float, default=1.0, metavar="SECONDS", help="loop period (default 1)"
    )
    scaler.add_argument(
        "--catalog", metavar="FILE", help="instance catalog CSV (default: the built-in one)"
    )
    scaler.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="campaign for a Lease so one replica acts; back-offs pass to the next leader through it (default on)",
    )
    scaler.add_argument(
        "--lease-namespace",
        default="gibbous-system",
        help="Lease namespace (default gibbous-system)",
    )
    scaler.add_argument(
        "--lease-name", default="gibbous-autoscaler", help="Lease name (default gibbous-autoscaler)"
    )
    scaler.add_argument("--identity", help="leader-election identity (default: hostname_pid)")
    scaler.add_argument(
        "--kwok-boot-seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="kwok: how long a node stays NotReady after launch (default 5)",
    )
    scaler.add_argument(
        "--kwok-run-pods",
        action="store_true",
        help="kwok: mark pods bound to kwok nodes Running, as a kubelet would",
    )
    scaler.add_argument(
        "--scheduler-lease",
        default="gibbous/gibbous-scheduler",
        metavar="NAMESPACE/NAME",
        help="the Gibbous scheduler's leader-election Lease: while it is stale, managed pods "
        "waiting on that scheduler get a Warning event (and, with "
        "reroutePodsOfStoppedScheduler, are deleted for their controller to recreate) ('' "
        "to not watch it)",
    )
    scaler.add_argument(
        "--aws-launch-template",
        metavar="NAME|lt-ID",
        help="aws: a launch template to launch from (optional: without one, every setting "
        "comes from the aws.* configuration and what EKS reports)",
    )
    scaler.add_argument(
        "--aws-subnet",
        action="append",
        default=[],
        metavar="ZONE=SUBNET",
        help="aws: subnet to use in a zone (repeatable; default: aws.subnets or the cluster's "
        "tagged subnets)",
    )
    scaler.add_argument(
        "--gcp-endpoint",
        metavar="URL",
        help="gcp: serve GKE's and Compute's REST calls from this address, anonymously (the "
        "GKE emulator of `gibbous dev-cluster up --cloud gcp`; default: Google's APIs with "
        "Application Default Credentials)",
    )
    scaler.add_argument(
        "--azure-endpoint",
        metavar="URL",
        help="azure: serve ARM's calls from this HTTPS address with a static token (the AKS "
        "emulator of `gibbous dev-cluster up --cloud azure`; default: Azure with "
        "DefaultAzureCredential)",
    )
    scaler.add_argument(
        "--azure-ca", metavar="FILE", help="azure: CA bundle to trust for --azure-endpoint"
    )
    scaler.add_argument(
        "--oci-endpoint",
        metavar="URL",
        help="oci: serve Container Engine's and Identity's calls from this address (the OKE "
        "emulator of `gibbous dev-cluster up --cloud oci`), signing with the API key of "
        "--oci-config; default: OCI with OKE workload identity, else instance principals",
    )
    scaler.add_argument(
        "--oci-config",
        metavar="FILE",
        help="oci: an OCI SDK config file (user, tenancy, fingerprint, key_file, region) whose "
        "API key signs the requests",
    )
    scaler.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )

    dev = commands.add_parser(
        "dev-cluster",
        help="run Gibbous on a real control plane on this machine (no cloud)",
        description=(
            "up: start etcd, kube-apiserver, kube-controller-manager, the Gibbous webhook (registered "
            "with its CA), the extender, the gibbous-scheduler kube-scheduler calling it (leading "
            "through a Lease the webhook watches), a separate default-scheduler, and the autoscaler "
            "(kwok provider, or the aws, gcp, azure or oci provider against an EC2/EKS, GKE, AKS "
            "or OKE emulator with --cloud aws|gcp|azure|oci), all on "
            "127.0.0.1, and write DIR/kubeconfig. The current Kubernetes release (default) comes from KUBE_APISERVER_BIN, "
            "KUBE_SCHEDULER_BIN, KUBE_CONTROLLER_MANAGER_BIN, ETCD_BIN or KUBEBUILDER_ASSETS, else is "
            "built once from the Go module proxy (needs Go); --kubernetes-version 1.20 uses v1.20.2, "
            "built once from Debian's source (or KUBE_OLD_ASSETS). down: stop everything and remove "
            "DIR. status: what runs (exit 0 all, 1 some stopped, 3 none)."
        ),
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dev.add_argument("action", choices=("up", "down", "status"))
    dev.add_argument(
        "--dir",
        metavar="DIR",
        help="state directory (default $XDG_STATE_HOME/gibbous/dev-cluster, i.e. "
        "~/.local/state/gibbous/dev-cluster)",
    )
    _add_set_option(
        dev, "Gibbous configuration for the webhook, extender and autoscaler (repeatable)"
    )
    dev.add_argument(
        "--cloud",
        choices=("kwok", "aws", "gcp", "azure", "oci"),
        default="kwok",
        help="kwok (default): Nodes made directly in the API server; aws: the real aws provider "
        "against an EC2/EKS emulator on loopback, whose node agent registers each instance's "
        "Node from its user data; gcp: the real gcp provider against a GKE emulator, whose node "
        "agent registers each node-pool instance as GKE would; azure: the real azure provider "
        "against an AKS emulator on loopback HTTPS; oci: the real oci provider against an OKE "
        "emulator that checks request signatures (all need `pip install "
        "'gibbous[emulator]'`)",
    )
    dev.add_argument(
        "--kubernetes-version",
        choices=("current", "1.20"),
        default="current",
        help="which control plane to run: the current release (default; scheduling gates on) "
        "or v1.20.2 (no scheduling gates)",
    )
    dev.add_argument(
        "--kwok-boot-seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long new kwok nodes stay NotReady (default 5)",
    )

    certs = commands.add_parser("certs", help="TLS material for the webhook")
    certs_commands = certs.add_subparsers(dest="certs_command", metavar="SUBCOMMAND")
    generate = certs_commands.add_parser(
        "generate",
        help="write a CA and a serving certificate for the webhook Service",
        description=(
            "Write ca.crt, ca.key, tls.crt and tls.key (keys mode 0600) into DIR. The serving certificate is "
            "valid for NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.cluster.local plus --dns/--ip names."
        ),
    )
    generate.add_argument("--service", required=True, metavar="NAME", help="webhook Service name")
    generate.add_argument("--namespace", required=True, metavar="NS", help="its namespace")
    generate.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    generate.add_argument(
        "--days", type=int, default=365, help="validity of the serving certificate (default 365)"
    )
    generate.add_argument(
        "--ca-days", type=int, default=3650, help="validity of the CA (default 3650)"
    )
    generate.add_argument(
        "--dns", action="append", default=[], metavar="NAME", help="extra DNS name (repeatable)"
    )
    generate.add_argument(
        "--ip", action="append", default=[], metavar="ADDR", help="extra IP address (repeatable)"
    )

    cfg = commands.add_parser(
        "config",
        help="print the effective configuration",
        description="Print every configuration key with its effective value, after the file, environment and --set.",
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(cfg)
    cfg.add_argument(
        "--check",
        metavar="FILE",
        help="check a configuration or Helm values file (Luna's or Gibbous's) instead: say "
        "what it sets and which of its keys are install settings that only the Helm chart "
        "reads; exit 2 with every problem named if Gibbous would refuse it",
    )
    return parser


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
    if not workloads:
        # A $0.00/hr total with status 0 would read as success to a script.
        sys.stderr.write(
            "gibbous estimate: nothing was estimated: the input holds no workload Gibbous "
            "counts (see the notes)\n"
        )
        return EXIT_NOTHING_ESTIMATED
    return EXIT_UNSATISFIABLE if report.unsatisfiable else EXIT_OK


def _scenario_names() -> list[str]:
    from gibbous.simulation.scenario import built_in

    return list(built_in())


def run_simulate(args: argparse.Namespace, stdout: TextIO) -> int:
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
    pages = []
    for scenario in scenarios:
        results = []
        for policy in policies:

            def progress(done: float, policy: str = policy, name: str = scenario.name) -> None:
                if not args.quiet:
                    bar = "#" * int(done * 30)
                    sys.stderr.write(f"\r{name} {policy:<15} [{bar:<30}] {done:4.0%}")
                    if done >= 1:
                        sys.stderr.write("\n")

            results.append(
                simulate(
                    scenario,
                    policy,
                    seed=args.seed,
                    overrides=list(args.overrides),
                    configuration=configuration,
                    progress=progress,
                )
            )
        if args.output == "json":
            stdout.write(as_json(scenario, results) + "\n")
        else:
            stdout.write(f"{scenario.name}: {scenario.description}\n\n{table(results)}\n")
        pages.append(html_report(scenario, results))
    if args.report:
        try:
            Path(args.report).write_text("\n".join(pages), encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--report {args.report}: {error.strerror}") from None
    return EXIT_OK


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


def run_config(args: argparse.Namespace, stdout: TextIO) -> int:
    if args.check:
        return _check_config(args.check, list(args.overrides), stdout)
    config = load_config(args.config, list(args.overrides))
    stdout.write(yaml.safe_dump(render_config(config), sort_keys=False))
    return EXIT_OK


def _check_config(path: str, overrides: list[str], stdout: TextIO) -> int:
    document = read_document(path)
    config = build_config(document, overrides=overrides)
    changed = {
        key: value
        for key, value in render_config(config).items()
        if value != render_config(Config()).get(key)
    }
    stdout.write(f"{path}: a valid Gibbous configuration\n")
    if changed:
        stdout.write("sets (differing from the defaults):\n")
        for key, value in changed.items():
            stdout.write(f"  {key}: {json.dumps(value)}\n")
    else:
        stdout.write("sets nothing that differs from the defaults\n")
    for note in config_notes(config):
        stdout.write(f"note: {note}\n")
    skipped = install_settings(document) if isinstance(document, dict) else []
    if skipped:
        stdout.write("not applicable to Gibbous itself (install settings the Helm chart reads):\n")
        for key in skipped:
            stdout.write(f"  {key}: {INSTALL_KEYS[key]}\n")
    return EXIT_OK


def _server_setup(args: argparse.Namespace) -> tuple[Config, Listen]:
    """Logging, configuration and the listen address, shared by the servers."""
    import logging

    from gibbous.serving import Listen

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(args.config, list(args.overrides))
    try:
        return config, Listen.parse(args.listen)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def run_webhook(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from gibbous.core.admission.mutation import ServerFeatures
    from gibbous.kubeapi import server_version, supports_scheduling_gates
    from gibbous.serving import TLSServer
    from gibbous.webhook.app import create_app
    from gibbous.webhook.metrics import WebhookMetrics

    config, listen = _server_setup(args)
    gates = args.scheduling_gates == "on"
    if args.scheduling_gates == "auto" and (
        config.provisioning_gate or config.estimate_only_namespaces
    ):
        version = server_version(args.kubeconfig)
        gates = supports_scheduling_gates(version)
        logging.getLogger("gibbous.webhook").info(
            "API server version %s: scheduling gates %s",
            ".".join(map(str, version)) if version else "unknown",
            "supported" if gates else "not used",
        )
    background = []
    if args.self_managed_certs:
        certificates = _self_managed_certificates(args, config)
        certificates.sync()  # the server needs its files before it starts

        async def keep_rotating() -> None:
            while True:
                await asyncio.sleep(args.cert_check_interval)
                try:
                    await asyncio.to_thread(certificates.sync)
                except Exception:
                    logging.getLogger("gibbous.certs").exception(
                        "certificate sync failed; retrying later"
                    )

        background.append(keep_rotating)
    else:
        for path in (args.tls_cert, args.tls_key):
            if not Path(path).is_file():
                raise ConfigError(f"TLS file {path} does not exist")
    scheduler_alive = None
    if config.scheduler_name and args.scheduler_lease:
        from kubernetes import client

        from gibbous.kubeapi import load_client_config
        from gibbous.webhook.routing import SchedulerLease

        namespace, _, name = args.scheduler_lease.partition("/")
        if not namespace or not name:
            raise ConfigError(
                f"--scheduler-lease {args.scheduler_lease!r}: expected NAMESPACE/NAME"
            )
        lease = SchedulerLease(
            client.ApiClient(load_client_config(args.kubeconfig)), namespace, name
        )
        lease.start()
        scheduler_alive = lease.alive
    metrics = WebhookMetrics()
    app = create_app(
        config, ServerFeatures(scheduling_gates=gates), metrics, scheduler_alive=scheduler_alive
    )
    server = TLSServer(
        app,
        listen,
        args.tls_cert,
        args.tls_key,
        registry=metrics.registry,
        log_level=args.log_level,
    )
    server.run(background)
    return EXIT_OK


def _self_managed_certificates(args: argparse.Namespace, config: Config) -> SelfManagedCertificates:
    import datetime

    from kubernetes import client

    from gibbous.certs.authority import service_names
    from gibbous.certs.rotation import RotationPolicy
    from gibbous.certs.selfmanaged import KubernetesSecretStore, SelfManagedCertificates
    from gibbous.kubeapi import load_client_config

    store = KubernetesSecretStore(client.ApiClient(load_client_config(args.kubeconfig)))
    return SelfManagedCertificates(
        store=store,
        namespace=args.namespace,
        secret=args.secret,
        configurations=tuple(
            args.webhook_configuration or [config.webhook_config_prefix + "gibbous"]
        ),
        cert_path=Path(args.tls_cert),
        key_path=Path(args.tls_key),
        policy=RotationPolicy(
            dns_names=tuple(service_names(args.service, args.namespace)),
            ca_days=args.ca_days,
            serving_days=args.cert_days,
        ),
        clock=lambda: datetime.datetime.now(datetime.UTC),
    )


def run_extender(args: argparse.Namespace) -> int:
    import uvicorn
    from kubernetes import client

    from gibbous.extender.app import create_app as create_extender
    from gibbous.extender.app import probe_app
    from gibbous.extender.state import InformerView
    from gibbous.kubeapi import load_client_config
    from gibbous.serving import Listen, TLSServer, server_config

    config, listen = _server_setup(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
    if args.probe_listen and not args.tls_cert:
        raise ConfigError("--probe-listen needs --tls-cert and --tls-key")
    try:
        probe_listen = Listen.parse(args.probe_listen) if args.probe_listen else None
    except ValueError:
        raise ConfigError(f"--probe-listen {args.probe_listen!r}: expected HOST:PORT") from None
    view = InformerView(
        client.ApiClient(load_client_config(args.kubeconfig)),
        time_slices=config.nvidia_gpu_time_slices,
    )
    view.start()
    app = create_extender(config, view)
    if args.tls_cert:
        background = []
        if probe_listen:
            probes = uvicorn.Server(
                server_config(probe_app(app), probe_listen, log_level=args.log_level)
            )
            background.append(probes.serve)
        TLSServer(
            app,
            listen,
            args.tls_cert,
            args.tls_key,
            client_ca=args.tls_client_ca,
            log_level=args.log_level,
        ).run(background)
    else:
        # Server.run takes uvicorn's loop factory (uvloop), as TLSServer.run does.
        uvicorn.Server(server_config(app, listen, log_level=args.log_level)).run()
    view.stop()
    return EXIT_OK


@contextlib.contextmanager
def _provider_setup(provider: str, config: Config) -> Iterator[None]:
    """What `--provider gcp|azure|oci` share: the provider runs on its own cloud, and its
    configuration errors (found as it reads the cluster) stop the start, named."""
    from gibbous.autoscaler.cloud.base import FatalConfigurationError

    if config.cloud != provider:
        raise ConfigError(
            f"--provider {provider} needs cloudProvider {provider} (it is {config.cloud})"
        )
    try:
        yield
    except FatalConfigurationError as error:
        raise ConfigError(f"--provider {provider}: {error}") from None


def _gcp_provider(args: argparse.Namespace, config: Config, catalog: list[InstanceType]) -> Any:
    """The GKE provider, its SDK clients pointed at --gcp-endpoint or at Google's APIs."""
    import time

    try:
        from gibbous.autoscaler.cloud.gke import discover, sdk_clients
    except ImportError:
        raise ConfigError(
            "--provider gcp needs google-cloud-container and google-cloud-compute: "
            "pip install 'gibbous[gcp]'"
        ) from None

    with _provider_setup("gcp", config):
        try:
            container, compute, adc_project = sdk_clients(args.gcp_endpoint or "")
        except Exception as error:  # google.auth's DefaultCredentialsError and kin
            raise ConfigError(f"--provider gcp: no Google credentials ({error})") from None
        project = config.gcp.project or adc_project
        if not project:
            raise ConfigError("--provider gcp: set gcp.project (the credentials name none)")
        return discover(
            container=container,
            compute=compute,
            config=config.gcp,
            cluster_id=config.cluster_id,
            region=config.effective_region,
            project=project,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
        )


def _azure_provider(args: argparse.Namespace, config: Config, catalog: list[InstanceType]) -> Any:
    """The AKS provider, its ARM client pointed at --azure-endpoint or at Azure."""
    import os
    import time

    try:
        from gibbous.autoscaler.cloud.aks import discover, sdk_client
    except ImportError:
        raise ConfigError(
            "--provider azure needs azure-mgmt-containerservice and azure-identity: "
            "pip install 'gibbous[azure]'"
        ) from None

    with _provider_setup("azure", config):
        subscription = config.azure.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID", "")
        if not subscription:
            raise ConfigError(
                "--provider azure: set azure.subscriptionId (or AZURE_SUBSCRIPTION_ID)"
            )
        client = sdk_client(subscription, args.azure_endpoint or "", args.azure_ca or "")
        return discover(
            client=client,
            config=config.azure,
            cluster_id=config.cluster_id,
            region=config.effective_region,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
        )


def _oci_provider(args: argparse.Namespace, config: Config, catalog: list[InstanceType]) -> Any:
    """The OKE provider, signing with --oci-config's key or OCI's workload identity."""
    import time

    try:
        import oci

        from gibbous.autoscaler.cloud.oke import discover, sdk_clients
    except ImportError:
        raise ConfigError("--provider oci needs the oci SDK: pip install 'gibbous[oci]'") from None

    with _provider_setup("oci", config):
        sdk_config = None
        if args.oci_config:
            try:
                sdk_config = oci.config.from_file(args.oci_config)
            except (oci.exceptions.ConfigFileNotFound, oci.exceptions.InvalidConfig) as error:
                raise ConfigError(f"--oci-config {args.oci_config}: {error}") from None
        try:
            container, identity = sdk_clients(sdk_config, args.oci_endpoint or "")
        except Exception as error:  # no workload identity, no instance principal
            raise ConfigError(f"--provider oci: no OCI credentials ({error})") from None
        return discover(
            container=container,
            identity=identity,
            config=config.oci,
            cluster_id=config.cluster_id,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
        )


def run_autoscaler(args: argparse.Namespace) -> int:
    import logging
    import os
    import socket
    import time

    import uvicorn
    from kubernetes import client

    from gibbous.autoscaler.cloud.base import CloudProvider
    from gibbous.autoscaler.kube import KubeCluster
    from gibbous.autoscaler.leader import LeaderElector
    from gibbous.autoscaler.lifecycle import NodeLifecycle
    from gibbous.autoscaler.loop import Autoscaler
    from gibbous.autoscaler.process import AutoscalerService
    from gibbous.kubeapi import load_client_config, server_version
    from gibbous.kubecache import register_cache_metrics
    from gibbous.serving import server_config

    config, listen = _server_setup(args)
    if args.period <= 0:
        raise ConfigError("--period must be > 0")
    catalog = load_catalog(args.catalog, config.cloud, config.effective_region)
    api = client.ApiClient(load_client_config(args.kubeconfig))
    identity = args.identity or f"{socket.gethostname()}_{os.getpid()}"
    provider: CloudProvider
    kubelet = None
    if args.provider == "kwok":
        from gibbous.autoscaler.cloud.kwok import KwokCloudProvider

        kwok = KwokCloudProvider(api, catalog, config, time.time, boot_s=args.kwok_boot_seconds)
        provider = kwok

        def kubelet() -> None:
            kwok.heartbeat(config.cluster_id, mark_pods_running=args.kwok_run_pods)
    elif args.provider == "gcp":
        provider = _gcp_provider(args, config, catalog)
    elif args.provider == "azure":
        provider = _azure_provider(args, config, catalog)
    elif args.provider == "oci":
        provider = _oci_provider(args, config, catalog)
    else:
        try:
            import boto3
        except ImportError:
            raise ConfigError("--provider aws needs boto3: pip install 'gibbous[aws]'") from None
        import json

        from gibbous.autoscaler.cloud.aws import discover
        from gibbous.autoscaler.cloud.base import FatalConfigurationError

        if not args.aws_launch_template and not config.aws.node_instance_profile:
            # Checked here, not at the first launch: an instance without a node role runs
            # and is paid for, but never becomes a Node.
            raise ConfigError(
                "--provider aws: set aws.nodeInstanceProfile (the instance profile of the "
                "nodes' IAM role) or pass --aws-launch-template: without either, EC2 "
                "instances cannot join the cluster"
            )
        subnets = {}
        for item in args.aws_subnet:
            zone, sep, subnet = item.partition("=")
            if not sep or not zone or not subnet:
                raise ConfigError(f"--aws-subnet {item!r}: expected ZONE=SUBNET")
            subnets[zone] = subnet
        # boto3 takes AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_EC2, ...) from the environment,
        # which is how the dev cluster points it at the EC2 emulator.
        region = config.effective_region
        advisor: object = None
        if config.aws.use_spot_advisor:
            try:
                advisor = json.loads(Path(config.aws.spot_advisor_file).read_text())
            except (OSError, ValueError) as error:
                raise ConfigError(f"aws.spotAdvisorFile: {error}") from None
        try:
            provider = discover(
                ec2=boto3.client("ec2", region_name=region),
                eks=boto3.client("eks", region_name=region),
                ssm=boto3.client("ssm", region_name=region),
                config=config,
                catalog=catalog,
                clock=time.time,
                launch_template=args.aws_launch_template or "",
                subnet_overrides=subnets,
                spot_advisor=advisor,
            )
        except (FatalConfigurationError, ConfigError) as error:
            raise ConfigError(f"--provider aws: {error}") from None
        if config.aws.effective_user_data_type == "None":
            logging.getLogger("gibbous.autoscaler").warning(
                "aws.userDataType None: nodes register without Gibbous's labels and taints; "
                "the autoscaler patches them on after registration, so pods may land on a "
                "spot node before its taint is there"
            )
    cluster = KubeCluster(api, identity=identity, server_version=server_version(args.kubeconfig))
    elector = (
        LeaderElector(api, namespace=args.lease_namespace, name=args.lease_name, identity=identity)
        if args.leader_elect
        else None
    )
    lease_namespace, _, lease_name = (args.scheduler_lease or "").partition("/")
    if args.scheduler_lease and not (lease_namespace and lease_name):
        raise ConfigError(f"--scheduler-lease {args.scheduler_lease!r}: expected NAMESPACE/NAME")
    autoscaler = Autoscaler(
        config,
        provider,
        cluster,
        clock=time.time,
        scheduler_lease=(lease_namespace, lease_name) if args.scheduler_lease else None,
    )
    register_cache_metrics(autoscaler.metrics.registry, "gibbous_autoscaler", cluster.informers)
    service = AutoscalerService(
        autoscaler,
        cluster,
        period_s=args.period,
        elector=elector,
        kubelet=kubelet,
        lifecycle=NodeLifecycle(autoscaler, cluster, clock=time.time),
    )
    server = uvicorn.Server(server_config(service.app(), listen, log_level=args.log_level))
    lost = []

    def on_lost() -> None:
        lost.append(True)
        server.should_exit = True

    service.on_lost_leadership = on_lost
    service.start()
    try:
        server.run()
    finally:
        service.stop()
    return 1 if lost else EXIT_OK


def run_dev_cluster(args: argparse.Namespace, stdout: TextIO) -> int:
    from gibbous.devcluster.binaries import BinariesError
    from gibbous.devcluster.controlplane import ControlPlaneError
    from gibbous.devcluster.stack import DevCluster, default_directory

    cluster = DevCluster(Path(args.dir) if args.dir else default_directory(), stdout)
    if args.action == "status":
        return cluster.status()
    if args.action == "down":
        cluster.down()
        return EXIT_OK
    try:
        cluster.up(
            list(args.overrides),
            kwok_boot_s=args.kwok_boot_seconds,
            release=args.kubernetes_version,
            cloud=args.cloud,
        )
    except (ControlPlaneError, BinariesError) as error:
        raise ConfigError(f"dev cluster did not start: {error}") from None
    return EXIT_OK


def run_certs(args: argparse.Namespace, stdout: TextIO) -> int:
    import datetime

    from gibbous.certs.authority import generate_ca, generate_serving, service_names, write_bundle

    if args.days < 1 or args.ca_days < args.days:
        raise ConfigError("--days must be >= 1 and --ca-days >= --days")
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(
        common_name=f"{args.service}.{args.namespace} webhook CA", days=args.ca_days, now=now
    )
    try:
        serving = generate_serving(
            ca,
            dns_names=service_names(args.service, args.namespace) + args.dns,
            ip_addresses=args.ip,
            days=args.days,
            now=now,
        )
    except ValueError as error:
        raise ConfigError(f"--ip: {error}") from None
    paths = write_bundle(Path(args.out), ca, serving)
    for name, path in paths.items():
        stdout.write(f"wrote {path}{' (0600)' if name.endswith('.key') else ''}\n")
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
    if args.command == "certs" and args.certs_command is None:
        parser.parse_args(["certs", "--help"])
    handlers = {
        "estimate": lambda: run_estimate(args, out, stdin or sys.stdin),
        "simulate": lambda: run_simulate(args, out),
        "config": lambda: run_config(args, out),
        "webhook": lambda: run_webhook(args),
        "extender": lambda: run_extender(args),
        "autoscaler": lambda: run_autoscaler(args),
        "dev-cluster": lambda: run_dev_cluster(args, out),
        "certs": lambda: run_certs(args, out),
    }
    try:
        return handlers[args.command]()
    except GibbousError as error:
        sys.stderr.write(f"gibbous {args.command}: error: {error}\n")
        return EXIT_BAD_INPUT

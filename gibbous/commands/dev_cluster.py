"""`gibbous dev-cluster`: all of Gibbous on a real control plane on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gibbous.commands.options import EXIT_OK, add_set_option, config_epilog
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "dev-cluster"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    dev = commands.add_parser(
        NAME,
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
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dev.add_argument("action", choices=("up", "down", "status"))
    dev.add_argument(
        "--dir",
        metavar="DIR",
        help="state directory (default $XDG_STATE_HOME/gibbous/dev-cluster, i.e. "
        "~/.local/state/gibbous/dev-cluster)",
    )
    add_set_option(
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
        "emulator that checks request signatures (all four need the emulator extra: "
        "`.venv/bin/pip install -e '.[emulator]'` in a checkout of Gibbous)",
    )
    dev.add_argument(
        "--without-gibbous",
        action="store_true",
        help="up: start the control plane, a default-scheduler and (with --cloud) the emulator, "
        "but none of Gibbous, so that the Helm chart or manifests/base can be installed into it "
        "(its objects are stored; its pods stay Pending: no node exists and nothing runs containers)",
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
    return dev


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    from gibbous.devcluster.binaries import BinariesError
    from gibbous.devcluster.controlplane import ControlPlaneError
    from gibbous.devcluster.stack import DevCluster, default_directory

    cluster = DevCluster(Path(args.dir).absolute() if args.dir else default_directory(), stdout)
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
            without_gibbous=args.without_gibbous,
        )
    except (ControlPlaneError, BinariesError) as error:
        raise ConfigError(f"dev cluster did not start: {error}") from None
    return EXIT_OK

"""The EC2/EKS emulator and its node agent as one process, for `gibbous dev-cluster up
--cloud aws`: the one module that imports both."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

from gibbous.catalogs import load_catalog
from gibbous.devcluster.aws.agent import NodeAgent
from gibbous.devcluster.aws.emulator import Ec2Emulator
from gibbous.devcluster.emulation import BOOT_S, kubernetes_api


def main(argv: list[str] | None = None) -> int:
    """The emulator and its node agent as one process (for `gibbous dev-cluster --cloud aws`)."""
    parser = argparse.ArgumentParser(prog="python -m gibbous.devcluster.aws")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--region", default="us-west-2")
    parser.add_argument("--boot-seconds", type=float, default=None)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--ready-file", help="touched once the account is seeded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    emulator = Ec2Emulator(region=args.region, port=args.port)
    emulator.start()
    emulator.seed(args.cluster, args.kubernetes_version)
    if args.ready_file:
        Path(args.ready_file).touch()
    agent = NodeAgent(
        kubernetes_api(args.kubeconfig),
        time.time,
        ec2=emulator.client("ec2"),
        eks=emulator.client("eks"),
        iam=emulator.client("iam"),
        catalog=load_catalog(None, "aws", args.region),
        cluster_name=args.cluster,
        region=args.region,
        boot_s=args.boot_seconds if args.boot_seconds is not None else BOOT_S * args.time_scale,
    )
    stopped = threading.Event()
    threading.Thread(target=emulator.run, args=(stopped,), daemon=True).start()
    try:
        agent.run(stopped)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The AKS emulator and its node agent as one process, for `gibbous dev-cluster up --cloud
azure`: the one module that imports both."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from gibbous.devcluster.azure.agent import AksNodeAgent
from gibbous.devcluster.azure.emulator import AksEmulator
from gibbous.devcluster.emulation import (
    boot_seconds,
    emulator_arguments,
    kubernetes_api,
    set_durations,
    write_ready,
)

log = logging.getLogger("gibbous.aksemulator")


def main() -> None:
    args = emulator_arguments(__doc__.splitlines()[0])

    emulator = AksEmulator(
        cluster=args.cluster,
        version=args.kubernetes_version,
    )
    set_durations(emulator, args)
    directory = Path(args.ready_file).parent if args.ready_file else None
    _, ca_file = emulator.serve(args.port, directory)
    agent = AksNodeAgent(
        kubernetes_api(args.kubeconfig),
        time.time,
        kubelet_version=f"v{args.kubernetes_version}",
        emulator=emulator,
        boot_s=boot_seconds(args),
    )
    write_ready(args.ready_file, {"endpoint": emulator.base, "ca": str(ca_file)})
    log.info("AKS emulator at %s", emulator.base)
    agent.run(threading.Event())


if __name__ == "__main__":
    main()

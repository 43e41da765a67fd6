"""The GKE and Compute Engine emulator and its node agent as one process, for `gibbous
dev-cluster up --cloud gcp`: the one module that imports both."""

from __future__ import annotations

import logging
import threading
import time

from gibbous.devcluster.emulation import (
    boot_seconds,
    emulator_arguments,
    kubernetes_api,
    set_durations,
    write_ready,
)
from gibbous.devcluster.gcp.agent import GkeNodeAgent
from gibbous.devcluster.gcp.emulator import GkeEmulator

log = logging.getLogger("gibbous.gkeemulator")


def main() -> None:
    args = emulator_arguments(__doc__.splitlines()[0])

    emulator = GkeEmulator(
        cluster=args.cluster,
        version=f"{args.kubernetes_version}-gke.100",
    )
    set_durations(emulator, args)
    server = emulator.serve(args.port)
    agent = GkeNodeAgent(
        kubernetes_api(args.kubeconfig),
        time.time,
        kubelet_version=f"v{args.kubernetes_version}-gke.100",
        emulator=emulator,
        boot_s=boot_seconds(args),
    )
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    write_ready(args.ready_file, {"endpoint": endpoint})
    log.info("GKE emulator at %s", endpoint)
    agent.run(threading.Event())


if __name__ == "__main__":
    main()

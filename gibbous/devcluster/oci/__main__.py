"""The OKE emulator and its node agent as one process, for `gibbous dev-cluster up --cloud
oci`: the one module that imports both."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from gibbous.devcluster.emulation import (
    boot_seconds,
    emulator_arguments,
    kubernetes_api,
    set_durations,
    write_ready,
)
from gibbous.devcluster.oci.agent import OkeNodeAgent
from gibbous.devcluster.oci.emulator import OkeEmulator, emulator_identity

log = logging.getLogger("gibbous.okeemulator")


def main() -> None:
    args = emulator_arguments(__doc__.splitlines()[0])

    sdk_config, public = emulator_identity()
    emulator = OkeEmulator(
        cluster_name=args.cluster,
        version=f"v{args.kubernetes_version}",
        public_key=public,
    )
    set_durations(emulator, args)
    server = emulator.serve(args.port)
    agent = OkeNodeAgent(
        kubernetes_api(args.kubeconfig),
        time.time,
        kubelet_version=emulator.version,
        emulator=emulator,
        boot_s=boot_seconds(args),
    )
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    if args.ready_file:
        key_file = Path(args.ready_file).with_name("oci-emulator-key.pem")
        key_file.write_text(sdk_config["key_content"])
        key_file.chmod(0o600)
        identity = {k: v for k, v in sdk_config.items() if k != "key_content"}
        write_ready(
            args.ready_file,
            {"endpoint": endpoint, "config": identity | {"key_file": str(key_file)}},
        )
    log.info("OKE emulator at %s", endpoint)
    agent.run(threading.Event())


if __name__ == "__main__":
    main()

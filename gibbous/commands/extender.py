"""`gibbous extender`: the kube-scheduler extender (filter and prioritize)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from gibbous.commands.options import (
    EXIT_OK,
    add_config_options,
    add_log_level_option,
    config_epilog,
    server_setup,
)
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "extender"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    ext = commands.add_parser(
        NAME,
        help="serve the kube-scheduler extender (filter and prioritize)",
        description=(
            "Serve POST /filter and POST /prioritize for kube-scheduler (both the full-NodeList and the "
            "nodeCacheCapable NodeNames form), GET /healthz, /readyz (ready once the node and pod caches "
            "are synced) and /metrics. Plain HTTP unless --tls-cert/--tls-key are given."
        ),
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(ext)
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
    add_log_level_option(ext)
    return ext


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    import uvicorn
    from kubernetes import client

    from gibbous.extender.app import create_app as create_extender
    from gibbous.extender.app import probe_app
    from gibbous.extender.state import InformerView
    from gibbous.kubeapi import load_client_config
    from gibbous.serving import Listen, TLSServer, server_config

    config, listen = server_setup(args)
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

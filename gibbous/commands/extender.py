"""`gibbous extender`: the kube-scheduler extender (filter and prioritize)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TextIO

from gibbous.commands.options import (
    EXIT_OK,
    add_config_options,
    add_log_level_option,
    config_epilog,
    server_setup,
)
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from gibbous.certs.selfmanaged import SelfManagedExtenderCertificates
    from gibbous.commands.options import Subcommands
    from gibbous.serving import TLSServer

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
    _add_self_managed_options(ext)
    return ext


def _add_self_managed_options(ext: argparse.ArgumentParser) -> None:
    managed = ext.add_argument_group(
        "self-managed mutual TLS",
        "keep a CA of the extender's own and its serving certificate in one Secret and the "
        "scheduler's client certificate (with ca.crt, the CA bundle) in another, rotate them "
        "before expiry, and write --tls-cert, --tls-key and --tls-client-ca from them",
    )
    managed.add_argument(
        "--self-managed-certs", action="store_true", help="turn self-managed mutual TLS on"
    )
    managed.add_argument(
        "--namespace", default="gibbous", help="namespace of the Secrets (default gibbous)"
    )
    managed.add_argument(
        "--service",
        default="gibbous-extender",
        help="the extender's Service name, for the serving certificate (default gibbous-extender)",
    )
    managed.add_argument(
        "--secret",
        default="gibbous-extender-tls",
        help="Secret of the CA and serving certificate (default gibbous-extender-tls)",
    )
    managed.add_argument(
        "--client-secret",
        default="gibbous-extender-client-tls",
        help="Secret of the scheduler's client certificate, for it to mount "
        "(default gibbous-extender-client-tls)",
    )
    managed.add_argument(
        "--client-name",
        default="gibbous-scheduler",
        help="common name of the client certificate (default gibbous-scheduler)",
    )
    managed.add_argument(
        "--cert-check-interval",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how often to check for rotation (default 300)",
    )
    managed.add_argument("--ca-days", type=int, default=3650, help="CA validity (default 3650)")
    managed.add_argument(
        "--cert-days", type=int, default=90, help="serving certificate validity (default 90)"
    )
    managed.add_argument(
        "--client-days",
        type=int,
        default=3650,
        help="client certificate validity, at most the CA's (default 3650: kube-scheduler "
        "reads its extender client pair when it starts)",
    )


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    config, listen = server_setup(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
    if args.probe_listen and not args.tls_cert:
        raise ConfigError("--probe-listen needs --tls-cert and --tls-key")
    if args.self_managed_certs and not (args.tls_cert and args.tls_client_ca):
        raise ConfigError(
            "--self-managed-certs needs --tls-cert, --tls-key and --tls-client-ca (where to write)"
        )
    # The server's modules are loaded once the arguments are known to be usable.
    import uvicorn
    from kubernetes import client

    from gibbous.extender.app import create_app as create_extender
    from gibbous.extender.app import probe_app
    from gibbous.extender.state import InformerView
    from gibbous.kubeapi import load_client_config
    from gibbous.serving import Listen, server_config
    from gibbous.serving import TLSServer as Server

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
        background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        certificates = _self_managed_certificates(args) if args.self_managed_certs else None
        if certificates:
            bundle = certificates.sync().ca_bundle  # the server needs its files first
        if probe_listen:
            probes = uvicorn.Server(
                server_config(probe_app(app), probe_listen, log_level=args.log_level)
            )
            background.append(probes.serve)
        server = Server(
            app,
            listen,
            args.tls_cert,
            args.tls_key,
            client_ca=args.tls_client_ca,
            log_level=args.log_level,
        )
        if certificates:
            background.append(_keep_rotating(certificates, server, bundle, args))
        server.run(background)
    else:
        # Server.run takes uvicorn's loop factory (uvloop), as TLSServer.run does.
        uvicorn.Server(server_config(app, listen, log_level=args.log_level)).run()
    view.stop()
    return EXIT_OK


def _self_managed_certificates(args: argparse.Namespace) -> SelfManagedExtenderCertificates:
    import datetime
    from pathlib import Path

    from kubernetes import client

    from gibbous.certs.authority import service_names
    from gibbous.certs.rotation import RotationPolicy
    from gibbous.certs.selfmanaged import KubernetesSecrets, SelfManagedExtenderCertificates
    from gibbous.kubeapi import load_client_config

    return SelfManagedExtenderCertificates(
        store=KubernetesSecrets(client.ApiClient(load_client_config(args.kubeconfig))),
        namespace=args.namespace,
        secret=args.secret,
        client_secret=args.client_secret,
        client_name=args.client_name,
        cert_path=Path(args.tls_cert),
        key_path=Path(args.tls_key),
        client_ca_path=Path(args.tls_client_ca),
        policy=RotationPolicy(
            dns_names=tuple(service_names(args.service, args.namespace)),
            ca_days=args.ca_days,
            serving_days=args.cert_days,
            common_name="gibbous extender CA",
        ),
        client_days=args.client_days,
        clock=lambda: datetime.datetime.now(datetime.UTC),
    )


def _keep_rotating(
    certificates: SelfManagedExtenderCertificates,
    server: TLSServer,
    bundle: bytes,
    args: argparse.Namespace,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The rotation loop: the serving pair is reloaded from its files by the server; a new
    CA (in its rotation's overlap, before any client certificate from it is issued) is
    added to the CAs the running server accepts clients of (an SSLContext only adds)."""

    async def loop() -> None:
        known = bundle
        while True:
            await asyncio.sleep(args.cert_check_interval)
            try:
                state = await asyncio.to_thread(certificates.sync)
            except Exception:
                logging.getLogger("gibbous.certs").exception(
                    "certificate sync failed; retrying later"
                )
                continue
            if state.ca_bundle != known:
                server.context.load_verify_locations(cadata=state.ca_bundle.decode())
                known = state.ca_bundle

    return loop

"""`gibbous webhook`: the mutating and validating admission webhook over HTTPS."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
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
    from gibbous.certs.selfmanaged import SelfManagedCertificates
    from gibbous.commands.options import Subcommands
    from gibbous.core.settings.config import Config

NAME = "webhook"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    hook = commands.add_parser(
        NAME,
        help="serve the mutating and validating admission webhook over HTTPS",
        description=(
            "Serve POST /mutate and POST /validate (AdmissionReview v1 for Pods), GET /healthz, /readyz "
            "and /metrics over HTTPS. The certificate is reloaded when its files change. Scheduling gates "
            "are only added when the API server supports them (>= 1.27)."
        ),
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(hook)
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
    add_log_level_option(hook)
    _add_self_managed_options(hook)
    return hook


def _add_self_managed_options(hook: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    import asyncio

    from gibbous.core.admission.mutation import ServerFeatures
    from gibbous.kubeapi import server_version, supports_scheduling_gates
    from gibbous.serving import TLSServer
    from gibbous.webhook.app import create_app
    from gibbous.webhook.metrics import WebhookMetrics

    config, listen = server_setup(args)
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

"""`gibbous certs generate`: a CA and a serving certificate for the webhook Service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from gibbous.commands.options import EXIT_OK
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "certs"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    certs = commands.add_parser(NAME, help="TLS material for the webhook")
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
    return certs


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    if args.certs_command is None:
        _exit_with_help()
    return _generate(args, stdout)


def _exit_with_help() -> NoReturn:
    """`gibbous certs` alone: what `gibbous certs --help` prints, on standard output, exit 0."""
    certs = add_parser(argparse.ArgumentParser(prog="gibbous").add_subparsers())
    certs.print_help()
    certs.exit()


def _generate(args: argparse.Namespace, stdout: TextIO) -> int:
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

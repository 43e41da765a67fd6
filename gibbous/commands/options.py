"""What the commands share: exit statuses, the configuration options (--config, --set) with
the epilog listing every configuration key, and the servers' setup from their options."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

from gibbous.configfile import load_config
from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import describe_options

if TYPE_CHECKING:
    from gibbous.serving import Listen

    # What `add_subparsers` returns: each command's `add_parser` adds its subparser to it.
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNSATISFIABLE = 3
EXIT_NOTHING_ESTIMATED = 4
EXIT_UNSUPPORTED = 5


def config_epilog() -> str:
    lines = [
        "configuration keys (YAML file, GIBBOUS_<key> env with dots as __, or --set key=value):"
    ]
    for key, default, help_text in describe_options():
        lines.append(f"  {key} (default {default!r}): {help_text}")
    return "\n".join(lines)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (Luna option names; a Luna or Gibbous Helm values file "
        "is read as it is, its install settings left aside)",
    )
    add_set_option(
        parser, "override one configuration key, e.g. --set nvidiaGPUTimeSlices=2 (repeatable)"
    )


def add_set_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text
    )


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )


def server_setup(args: argparse.Namespace) -> tuple[Config, Listen]:
    """Configuration, logging (`--log-level`, the `logging.*` options) and the listen
    address, shared by the servers."""
    from gibbous.logsetup import configure_logging
    from gibbous.serving import Listen

    config = load_config(args.config, list(args.overrides))
    configure_logging(args.log_level, config.logging, args.command)
    try:
        return config, Listen.parse(args.listen)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def add_status_options(parser: argparse.ArgumentParser) -> None:
    """What `gibbous status` and `gibbous explain` read the cluster with."""
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster, then ~/.kube/config)"
    )
    parser.add_argument(
        "--status-configmap",
        default="gibbous-system/gibbous-autoscaler-status",
        metavar="NAMESPACE/NAME",
        help="the autoscaler's status object (default gibbous-system/gibbous-autoscaler-status; "
        "the chart's is <release namespace>/<release>-gibbous-autoscaler-status)",
    )
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (default text)"
    )

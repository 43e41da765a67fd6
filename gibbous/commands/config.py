"""`gibbous config`: the effective configuration, or a check of a configuration file."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, TextIO

import yaml

from gibbous.catalogs import builtin_catalog, builtin_regions
from gibbous.commands.options import EXIT_OK, add_config_options, config_epilog
from gibbous.configfile import load_config, read_document, with_cloud_region
from gibbous.core.settings.config import Config
from gibbous.core.settings.crosschecks import config_notes
from gibbous.core.settings.loader import build_config, render_config
from gibbous.core.settings.options.luna import INSTALL_KEYS, install_settings

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands

NAME = "config"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    cfg = commands.add_parser(
        NAME,
        help="print the effective configuration",
        description="Print every configuration key with its effective value, after the file, environment and --set.",
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(cfg)
    cfg.add_argument(
        "--check",
        metavar="FILE",
        help="check a configuration or Helm values file (Luna's or Gibbous's) instead: say "
        "what it sets and which of its keys are install settings that only the Helm chart "
        "reads; exit 2 with every problem named if Gibbous would refuse it",
    )
    return cfg


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    if args.check:
        return _check_config(args.check, list(args.overrides), stdout)
    config = load_config(args.config, list(args.overrides))
    stdout.write(yaml.safe_dump(render_config(config), sort_keys=False))
    return EXIT_OK


def _check_config(path: str, overrides: list[str], stdout: TextIO) -> int:
    document = read_document(path)
    config = build_config(document, overrides=overrides)
    changed = {
        key: value
        for key, value in render_config(config).items()
        if value != render_config(Config()).get(key)
    }
    stdout.write(f"{path}: a valid Gibbous configuration\n")
    if changed:
        stdout.write("sets (differing from the defaults):\n")
        for key, value in changed.items():
            stdout.write(f"  {key}: {json.dumps(value)}\n")
    else:
        stdout.write("sets nothing that differs from the defaults\n")
    for note in config_notes(config):
        stdout.write(f"note: {note}\n")
    for line in _region_lines(config):
        stdout.write(f"{line}\n")
    skipped = install_settings(document) if isinstance(document, dict) else []
    if skipped:
        stdout.write("not applicable to Gibbous itself (install settings the Helm chart reads):\n")
        for key in skipped:
            stdout.write(f"  {key}: {INSTALL_KEYS[key]}\n")
    return EXIT_OK


def _region_lines(config: Config) -> list[str]:
    """Which region the autoscaler will use, where that comes from, and whether Gibbous has
    a catalog for it."""
    config, choice = with_cloud_region(config)
    region, cloud = config.effective_region, config.cloud
    lines = [f"region: {region} (from {choice.source})"]
    if choice.default and cloud in ("azure", "oci"):
        where = "the AKS cluster's location" if cloud == "azure" else "the OCI credentials' region"
        lines.append(f"note: with region unset, the autoscaler uses {where} at start")
    regions = builtin_regions(cloud)
    if region in regions:
        types = builtin_catalog(cloud, region)
        dates = sorted({t.price_date for t in types if t.price_date})
        span = " to ".join(dict.fromkeys((dates[0], dates[-1]))) if dates else ""
        lines.append(
            f"built-in catalog: {len(types)} {cloud} types in {region}"
            + (f" (prices of {span})" if span else "")
        )
    elif cloud == "aws":
        lines.append(
            f"note: the built-in aws catalog has no types for {region} (it has "
            f"{len(regions)} regions): the autoscaler builds its catalog from AWS's APIs "
            "(ec2:DescribeInstanceTypes, ec2:DescribeInstanceTypeOfferings, "
            "pricing:GetProducts) and has no types until they answer; estimate and "
            "simulate need --catalog FILE for that region"
        )
    elif cloud == "azure":
        lines.append(
            f"note: the built-in azure catalog has no types for {region} (it has "
            f"{len(regions)} regions): the autoscaler builds its catalog from Azure's APIs "
            "(Resource SKUs, the Retail Prices API) and has no types until they answer; "
            "estimate and simulate need --catalog FILE for that region"
        )
    else:
        lines.append(
            f"warning: the built-in {cloud} catalog has no types for {region} (it has "
            f"{', '.join(regions)}): start the autoscaler with --catalog FILE for that region"
        )
    return lines

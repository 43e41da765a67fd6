"""The `gibbous` command: the top-level parser built from `COMMANDS`, and the dispatch to
the named command's `run`. Each command lives in its own module of `gibbous.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from gibbous import __version__
from gibbous.commands import (
    autoscaler,
    certs,
    config,
    dev_cluster,
    estimate,
    explain,
    extender,
    simulate,
    status,
    webhook,
)
from gibbous.commands.options import EXIT_BAD_INPUT
from gibbous.core.errors import GibbousError

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands


class Command(Protocol):
    """What a module of `gibbous.commands` provides."""

    NAME: str

    def add_parser(self, commands: Subcommands) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int: ...


# The commands, in the order `gibbous --help` lists them.
COMMANDS: tuple[Command, ...] = (
    estimate,
    simulate,
    webhook,
    extender,
    autoscaler,
    dev_cluster,
    certs,
    config,
    explain,
    status,
)


def build_parser(prog: str = "gibbous") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Gibbous: just-in-time, right-sized, cheapest-possible nodes for Kubernetes GPU and AI workloads.",
    )
    parser.add_argument("--version", action="version", version=f"gibbous {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stdin: TextIO | None = None,
    prog: str = "gibbous",
) -> int:
    out = stdout or sys.stdout
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return EXIT_BAD_INPUT
    command = {c.NAME: c for c in COMMANDS}[args.command]
    try:
        return command.run(args, out, stdin or sys.stdin)
    except GibbousError as error:
        sys.stderr.write(f"{prog} {args.command}: error: {error}\n")
        return EXIT_BAD_INPUT


def kubectl_main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """`kubectl gibbous ...`: kubectl runs the `kubectl-gibbous` executable on PATH with the
    words after `gibbous`; the same commands as `gibbous`."""
    return main(argv, stdout=stdout, prog="kubectl gibbous")

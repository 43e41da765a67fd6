"""The Markdown CLI reference: every command and subcommand of the real parser, each with all
its options, and the same text whatever the terminal."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gibbous.cli import build_parser
from gibbous.commands.reference import render_reference

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and its subparsers, found through argparse itself."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from walk(sub)


def sections(reference: str) -> dict[str, str]:
    """Each command's section, by the command line in its heading."""
    out = {}
    for part in reference.split("\n## ")[1:]:
        heading, _, body = part.partition("\n")
        assert heading.startswith("`") and heading.endswith("`"), heading
        assert heading[1:-1] not in out, f"{heading} twice"
        out[heading[1:-1]] = body
    return out


def listed_options(section: str) -> set[str]:
    """The option strings (or positional names) in a section's option tables."""
    found = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            invocation = line[3 : line.index("`", 3)].replace("\\|", "|")
            for form in invocation.split(", "):
                found.add(form.split(" ")[0])
    return found


def expected_options(parser: argparse.ArgumentParser) -> set[str]:
    expected: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            expected.update(action.option_strings)
        elif isinstance(action.metavar, str):
            expected.add(action.metavar)
        elif action.choices:
            expected.add("{" + ",".join(map(str, action.choices)) + "}")
        else:
            expected.add(action.dest)
    return expected


def test_every_command_appears_with_all_its_options() -> None:
    reference = render_reference()
    by_command = sections(reference)
    parsers = list(walk(build_parser()))
    assert {p.prog for p in parsers} == set(by_command)
    assert {"gibbous", "gibbous estimate", "gibbous autoscaler", "gibbous certs generate"} <= set(
        by_command
    )
    for parser in parsers:
        section = by_command[parser.prog]
        assert listed_options(section) == expected_options(parser), parser.prog
        usage = re.search(r"```text\n(usage: .*)\n```", section)
        assert usage, parser.prog
        assert usage[1].startswith(f"usage: {parser.prog} ")


def test_defaults_and_help_come_from_the_parser() -> None:
    autoscaler = sections(render_reference())["gibbous autoscaler"]
    assert "| `--provider {kwok,aws,gcp,azure,oci}` | required | where nodes come from |" in (
        autoscaler
    )
    assert "| `--listen HOST:PORT` | `0.0.0.0:8080` |" in autoscaler
    assert "| `--leader-elect, --no-leader-elect` | `True` |" in autoscaler
    # A `|` in a metavar is escaped: every table row keeps its three columns.
    assert "`--aws-launch-template NAME\\|lt-ID`" in autoscaler
    webhook = sections(render_reference())["gibbous webhook"]
    assert "**self-managed TLS**: keep the CA" in webhook
    assert "(default &lt;webhookConfigPrefix&gt;gibbous)" in webhook


def test_tables_keep_their_columns() -> None:
    for line in render_reference().splitlines():
        if line.startswith("|"):
            assert len(UNESCAPED_PIPE.findall(line)) in (3, 4), line


def test_the_output_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    first = render_reference()
    assert render_reference() == first
    for columns in ("20", "300"):
        monkeypatch.setenv("COLUMNS", columns)
        assert render_reference() == first


def test_python_m_writes_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    subprocess.run(
        [sys.executable, "-m", "gibbous.commands.reference", str(out)],
        check=True,
        env={**os.environ, "COLUMNS": "50"},
    )
    assert out.read_text(encoding="utf-8") == render_reference()


def test_the_committed_cli_reference_page_is_the_rendering() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "reference" / "cli.md"
    assert page.read_text(encoding="utf-8") == render_reference(), (
        "docs/reference/cli.md is stale: run scripts/render-cli-reference"
    )

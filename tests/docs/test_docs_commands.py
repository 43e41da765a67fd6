"""Every `gibbous` command and `--flag` the README and the book name exists in the real CLI.

Commands are found in fenced code blocks and in inline code: a `gibbous` (or
`.venv/bin/gibbous`, or `$ gibbous`) at the start of a shell command, then its subcommand
and the flags that follow up to the end of the command (`|`, `&&`, `;`, a `#` comment).
In fenced blocks a line ending in `\\` and the indented lines of a synopsis continue the
command. On the component pages, a flag written alone in inline code (`--lease-name`) is
checked against that page's commands too.

Each is checked against `gibbous <subcommand> --help`, run as a process: the help text is
what a user reads, whichever module builds the parsers.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

# Component pages: the commands a flag written on its own there belongs to.
PAGE_COMMANDS = {
    "docs/getting-started.md": ("dev-cluster",),
    "docs/components/autoscaler.md": ("autoscaler",),
    "docs/components/webhook.md": ("webhook", "certs generate"),
    "docs/components/extender.md": ("extender",),
    "docs/components/estimate.md": ("estimate",),
    "docs/components/simulate.md": ("simulate",),
}

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
SEGMENT_SPLIT = re.compile(r"\|\||&&|;|(?<![\w\]])\|(?![\w\[])|\$\(")
COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:[\w.~/-]*/)?gibbous\s+(.*)$")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
WORD = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class Mention:
    page: str
    line: int
    text: str


def _segments(text: str) -> list[str]:
    # A `#` after whitespace starts a shell comment; what follows is not part of the command.
    text = re.split(r"(?:^|\s)#", text, maxsplit=1)[0]
    return SEGMENT_SPLIT.split(text)


def _commands_in(text: str) -> list[str]:
    found = []
    for segment in _segments(text):
        match = COMMAND.match(segment)
        if match:
            found.append(match.group(1).strip())
    return found


def _fenced_logical_lines(lines: list[str], start: int) -> list[tuple[int, str]]:
    """The block's lines from index `start`, with continuations joined; (line number, text)."""
    logical: list[tuple[int, str]] = []
    for index in range(start, len(lines)):
        line = lines[index]
        if FENCE.match(line):
            break
        previous = logical[-1][1] if logical else ""
        continues = previous.endswith("\\") or (
            line[:1].isspace() and line.strip() and _commands_in(previous)
        )
        if logical and continues:
            number, text = logical[-1]
            logical[-1] = (number, text.rstrip("\\") + " " + line.strip())
        else:
            logical.append((index + 1, line))
    return logical


def _mentions() -> tuple[list[Mention], list[tuple[Mention, tuple[str, ...]]]]:
    """Commands, and flags written alone on component pages (with the commands they may be)."""
    commands: list[Mention] = []
    lone_flags: list[tuple[Mention, tuple[str, ...]]] = []
    for path in PAGES:
        page = path.relative_to(ROOT).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        in_fence = False
        for index, line in enumerate(lines):
            if FENCE.match(line):
                if not in_fence:
                    for number, text in _fenced_logical_lines(lines, index + 1):
                        commands += [Mention(page, number, c) for c in _commands_in(text)]
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            for span in INLINE.findall(line):
                found = _commands_in(span)
                commands += [Mention(page, index + 1, c) for c in found]
                if not found and span.startswith("--") and page in PAGE_COMMANDS:
                    flag = FLAG.match(span)
                    if flag:
                        lone_flags.append(
                            (Mention(page, index + 1, flag.group(0)), PAGE_COMMANDS[page])
                        )
    return commands, lone_flags


@functools.cache
def _help(words: tuple[str, ...]) -> str | None:
    """`gibbous WORDS --help`, or None when WORDS is not a command of its own."""
    result = subprocess.run(
        [sys.executable, "-m", "gibbous", *words, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    usage = " ".join(result.stdout.split()[:8])
    if result.returncode != 0 or not usage.startswith("usage: gibbous " + " ".join(words)):
        return None
    return result.stdout


def _has_flag(help_text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def _check(mention: Mention) -> list[str]:
    where = f"{mention.page}:{mention.line}: `gibbous {mention.text}`"
    tokens = mention.text.split()
    if not tokens or tokens[0].startswith("-"):
        top = _help(())
        assert top is not None
        return [f"{where}: no {f}" for f in FLAG.findall(mention.text) if not _has_flag(top, f)]
    sub = tokens[0]
    if not WORD.match(sub) or _help((sub,)) is None:
        return [f"{where}: `gibbous {sub}` is not a command"]
    words: tuple[str, ...] = (sub,)
    # A nested command (`certs generate`) has help of its own; a positional (`dev-cluster up`)
    # answers with its parent's usage.
    if len(tokens) > 1 and WORD.match(tokens[1]) and _help((sub, tokens[1])) is not None:
        words = (sub, tokens[1])
    help_text = _help(words)
    assert help_text is not None
    name = " ".join(words)
    return [
        f"{where}: `gibbous {name}` has no {flag}"
        for flag in FLAG.findall(mention.text)
        if not _has_flag(help_text, flag)
    ]


COMMANDS, LONE_FLAGS = _mentions()


def test_the_pages_name_gibbous_commands() -> None:
    # Guards the parser itself: the README's quick start and the synopses must be found.
    texts = {(m.page, m.text.split()[0]) for m in COMMANDS if m.text}
    assert ("README.md", "estimate") in texts
    for page, command in PAGE_COMMANDS.items():
        if page.startswith("docs/components/"):
            assert (page, command[0].split()[0]) in texts, page
    assert len(LONE_FLAGS) > 10


def test_every_command_and_flag_named_exists() -> None:
    problems = [problem for mention in COMMANDS for problem in _check(mention)]
    assert problems == [], "\n".join(problems)


def test_every_flag_named_on_a_component_page_exists() -> None:
    problems = []
    for mention, commands in LONE_FLAGS:
        helps = [_help(tuple(c.split())) for c in commands]
        if not any(h is not None and _has_flag(h, mention.text) for h in helps):
            problems.append(
                f"{mention.page}:{mention.line}: {mention.text} is not a flag of "
                + " or ".join(f"`gibbous {c}`" for c in commands)
            )
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ".venv/bin/gibbous dev-cluster up --cloud aws  # [--dir DIR]",
            ["dev-cluster up --cloud aws"],
        ),
        ("$ gibbous config --check values.yaml", ["config --check values.yaml"]),
        ("pip install -e . && .venv/bin/gibbous estimate x.yaml", ["estimate x.yaml"]),
        ("helm install gibbous charts/gibbous --namespace gibbous", []),
        ("gibbous autoscaler --provider kwok|aws", ["autoscaler --provider kwok|aws"]),
        ("kubectl get nodes -l node.elotl.co/created-by=gibbous", []),
    ],
)
def test_commands_are_found_where_a_shell_would_run_them(text: str, expected: list[str]) -> None:
    assert _commands_in(text) == expected


def test_a_made_up_flag_is_reported() -> None:
    problems = _check(Mention("README.md", 1, "autoscaler --provider kwok --no-such-flag"))
    assert problems == [
        "README.md:1: `gibbous autoscaler --provider kwok --no-such-flag`: `gibbous autoscaler` has no --no-such-flag"
    ]
    assert _check(Mention("README.md", 2, "no-such-command")) == [
        "README.md:2: `gibbous no-such-command`: `gibbous no-such-command` is not a command"
    ]

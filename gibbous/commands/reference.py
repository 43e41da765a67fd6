"""The `gibbous` command reference in Markdown, rendered from the real parsers: every command
and subcommand with its usage line, description, options (with their help, defaults and
whether they are required) and epilog. Deterministic: the usage is laid out on one line,
whatever the terminal's width.

    python -m gibbous.commands.reference [FILE]   # FILE, or standard output

or `render_reference()` from a docs generator."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

# Wide enough that argparse never wraps a usage line.
_ONE_LINE = 100_000


def render_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference of `parser` and its subcommands (default: `gibbous`'s own parser)."""
    if parser is None:
        from gibbous.cli import build_parser  # the command line imports the commands

        parser = build_parser()
    lines = [f"# `{parser.prog}` command reference", ""]
    lines += [
        "Generated from the command's parsers by `scripts/render-cli-reference` (`python -m gibbous.commands.reference`).",
        "",
    ]
    epilogs: dict[str, str] = {}
    for command in _walk(parser):
        lines += _section(command, epilogs)
    return "\n".join(lines).rstrip("\n") + "\n"


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """`parser`'s subcommands (name, parser) in the order its help lists them."""
    return [
        (name, sub)
        for action in parser._actions  # argparse keeps its subparsers here, and only here
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    ]


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for _, sub in subcommands(parser):
        yield from _walk(sub)


def _section(parser: argparse.ArgumentParser, epilogs: dict[str, str]) -> list[str]:
    lines = [f"## `{parser.prog}`", ""]
    lines += ["```text", _usage(parser), "```", ""]
    if parser.description:
        lines += [_prose(parser.description), ""]
    helps = _subcommand_helps(parser)
    if helps:
        lines += ["| command | what |", "|---|---|"]
        for name, sub in subcommands(parser):
            lines.append(f"| [`{name}`](#{_anchor(sub.prog)}) | {_cell(helps.get(name, ''))} |")
        lines.append("")
    for title, description, actions in _option_groups(parser):
        if title:
            lines += [f"**{_prose(title)}**: {_prose(description)}", ""]
        lines += ["| option | default | help |", "|---|---|---|"]
        lines += [_option_row(parser, action) for action in actions]
        lines.append("")
    if parser.epilog:
        first = epilogs.setdefault(parser.epilog, parser.prog)
        if first == parser.prog:
            lines += ["```text", parser.epilog, "```", ""]
        else:
            lines += [f"The epilog is the same as [`{first}`](#{_anchor(first)})'s.", ""]
    return lines


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=_ONE_LINE)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return " ".join(formatter.format_help().split())


def _subcommand_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {
        choice.dest: choice.help or ""
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._get_subactions()
    }


def _option_groups(
    parser: argparse.ArgumentParser,
) -> list[tuple[str, str, list[argparse.Action]]]:
    """(title, description, options): first argparse's own groups (positional arguments and
    options) as one untitled table, then each group the command adds, titled."""
    own = [parser._positionals, parser._optionals]
    groups: list[tuple[str, str, list[argparse.Action]]] = [
        ("", "", [a for g in own for a in g._group_actions if _listed(a)])
    ]
    for group in parser._action_groups:
        if group not in own:
            groups.append((group.title or "", group.description or "", list(group._group_actions)))
    return [(t, d, actions) for t, d, actions in groups if actions]


def _listed(action: argparse.Action) -> bool:
    return not isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS


def _option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=_ONE_LINE)
    # What `--help` prints in the left column, e.g. `--set KEY=VALUE`, `--leader-elect,
    # --no-leader-elect`, `FILE`.
    invocation = formatter._format_action_invocation(action)
    help_text = formatter._expand_help(action) if action.help else ""
    return f"| `{_code(invocation)}` | {_default(action)} | {_cell(help_text)} |"


def _default(action: argparse.Action) -> str:
    if action.option_strings and action.required:
        return "required"
    if not action.option_strings:  # argparse marks `nargs="*"` positionals required too
        return "" if action.nargs in ("?", "*") else "required"
    default = action.default
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return ""
    if default in (None, argparse.SUPPRESS, [], False) and not isinstance(
        action, argparse.BooleanOptionalAction
    ):
        return ""
    return f"`{_code(str(default))}`"


def _anchor(prog: str) -> str:
    """GitHub's anchor of the heading "`prog`"."""
    return re.sub(r"[^a-z0-9 _-]", "", prog.lower()).replace(" ", "-")


def _code(text: str) -> str:
    """Text inside a code span in a table cell: only `|` needs escaping there."""
    return text.replace("|", "\\|")


def _cell(text: str) -> str:
    return _prose(" ".join(text.split())).replace("|", "\\|")


def _prose(text: str) -> str:
    """Help text as Markdown: what would read as markup (`*`, `~`, `<tag>`, `\\`) is escaped,
    except inside the help's own `code spans`."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = (
            parts[i]
            .replace("\\", "\\\\")
            .replace("*", "\\*")
            .replace("~", "\\~")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
        )
    return "`".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    text = render_reference()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

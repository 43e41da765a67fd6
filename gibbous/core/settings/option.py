"""What one configuration option is: the single description the loader, `--help`, the
chart's values.yaml and docs/reference/options.md are all derived from.

An option's default is the default of its field in `Config` (or the section's
dataclass, which sits next to the section's options): the typed declaration Python
checks. Everything else about the option is its `Option` row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ValueType:
    """How an option's value is read (and checked) and written back as YAML."""

    name: str  # for people: "duration (30s, 10m, 1h30m, 7d)"
    parse: Callable[[object, str], Any]  # (value, key) -> typed value; ConfigError names the key
    render: Callable[[Any], object]  # typed value -> what YAML would say


@dataclass(frozen=True, kw_only=True)
class Option:
    key: str  # Gibbous's name; nested with dots; Luna's spelling wherever Luna has the option
    attribute: str  # dotted path into Config
    value_type: ValueType
    help: str
    # Luna's name for the option as the Luna posts spell it (docs/luna-spec), which the
    # loader accepts too; None: Gibbous's own, or a Luna option whose name is not known.
    luna: str | None
    since: str  # the Gibbous version that introduced the option

    @property
    def section(self) -> str:
        """The values-file section the key is nested in ("" at the top level)."""
        head, dot, _ = self.key.rpartition(".")
        return head if dot else ""


@dataclass(frozen=True)
class Section:
    """Options grouped as the docs and the values file group them."""

    title: str
    options: tuple[Option, ...]


def unchanged(value: Any) -> object:
    return value


def as_list(value: Any) -> object:
    return list(value) if value is not None else None

"""Reading the configuration file and environment (the I/O half of gibbous.core.settings.loader).

A configuration file is read with bounds (docs/decisions.md, "Hostile callers, second pass"):
at most `MAX_CONFIG_BYTES`, nesting at most `MAX_CONFIG_DEPTH` levels, and at most
`MAX_CONFIG_NODES` YAML nodes counted as the aliases expand. YAML anchors and aliases
stay allowed (Helm values files use them), but a "billion laughs" file, whose aliases
expand exponentially, is refused before anything expands it; so is a recursive alias.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config
from gibbous.core.settings.region import RegionChoice, choose_region

# A ConfigMap holds at most 1 MiB, and a Helm values file is far smaller.
MAX_CONFIG_BYTES = 1024 * 1024
# The deepest option is a list inside a section (3 levels); a whole Helm values file
# nests perhaps 8. PyYAML composes recursively, and 1000 levels exhaust Python's stack.
MAX_CONFIG_DEPTH = 64
# About 90 options whose longest lists have tens of items; the chart's whole values file
# is a few hundred nodes. 100 000 is two orders of magnitude above, and costs milliseconds.
MAX_CONFIG_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting and expanded nodes while composing, before any
    Python object is built."""

    def __init__(self, stream: str | IO[str]) -> None:
        super().__init__(stream)
        self._depth = 0
        # expanded node count of each completed node, by identity: an alias is the same
        # node object as its anchor, so a sum over children counts it once per use
        self._expanded: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nesting deeper than {MAX_CONFIG_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            alias = self.check_event(AliasEvent)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        if alias and id(node) not in self._expanded:
            # an alias to an anchor still being composed: `&a [*a]` is infinite
            raise ComposerError(None, None, "recursive alias (refers to itself)", node.start_mark)
        if not alias:
            self._expanded[id(node)] = self._count(node)
        return node

    def _count(self, node: Node) -> int:
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += self._expanded[id(child)]
        if total > MAX_CONFIG_NODES:
            raise ComposerError(
                None,
                None,
                f"more than {MAX_CONFIG_NODES} YAML nodes once aliases are expanded",
                node.start_mark,
            )
        return total


# Python refuses to convert integers of more than 4300 digits, with a ValueError that could
# name no key; such a scalar is kept as its text, which every option refuses by name.
_LONGEST_INTEGER_TEXT = 100


def _construct_int(loader: _BoundedLoader, node: ScalarNode) -> object:
    if len(node.value) > _LONGEST_INTEGER_TEXT:
        return loader.construct_scalar(node)
    return loader.construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_document(text: str, path: str) -> Any:
    """The YAML document in `text` (read from `path`), within the bounds above.
    Raises ConfigError."""
    loader = _BoundedLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    finally:
        loader.dispose()
    return {} if document is None else document


def read_document(path: str) -> Any:
    """The YAML document of a configuration or Helm values file. Raises ConfigError."""
    try:
        with Path(path).open(encoding="utf-8") as file:
            text = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error.reason}") from None
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than the limit of {MAX_CONFIG_BYTES} bytes")
    return parse_document(text, path)


def load_config(
    path: str | None,
    overrides: list[str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> Config:
    """Defaults < file < GIBBOUS_* environment < overrides. Raises ConfigError."""
    document = read_document(path) if path else None
    env = os.environ if environment is None else environment
    return build_config(document, environment=env, overrides=overrides)


def with_cloud_region(
    config: Config, environment: Mapping[str, str] | None = None
) -> tuple[Config, RegionChoice]:
    """The configuration with the region the cloud's environment names when the region
    option is empty (AWS_REGION, ...: see `gibbous.core.settings.region`), and where the
    region came from."""
    env = os.environ if environment is None else environment
    choice = choose_region(config.cloud, config.region, config.gcp.location, env)
    if choice.default or config.region:
        return config, choice
    return dataclasses.replace(config, region=choice.region), choice

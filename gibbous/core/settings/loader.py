"""Building a Config from Luna-named options: defaults, a YAML document, the environment
and `--set` items; and writing one back as YAML values.

Sources, lowest precedence first: built-in defaults, the YAML file, environment
variables `GIBBOUS_<key>` (dots written `__`, e.g. `GIBBOUS_scaleDown__enabled`)
and `--set key=value` (Helm's habit). The shell reads files and the
environment; this module only interprets the values.

Unknown keys and bad values fail with a message naming the key, the value and
the accepted form, and suggest the closest valid key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config
from gibbous.core.settings.crosschecks import cross_checks
from gibbous.core.settings.option import Option
from gibbous.core.settings.options import OPTIONS
from gibbous.core.settings.options.luna import INSTALL_KEYS, LUNA_SPELLINGS

_BY_KEY = {o.key: o for o in OPTIONS}
_SECTIONS = {o.section for o in OPTIONS if o.section}


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    """`{"scaleDown": {"enabled": true}}` -> `{"scaleDown.enabled": true}`."""
    out: dict[str, object] = {}
    for raw_key, value in document.items():
        key = f"{prefix}{raw_key}"
        if isinstance(value, Mapping) and key in _SECTIONS:
            out.update(flatten(value, f"{key}."))
        else:
            out[key] = value
    return out


def _unknown(key: str) -> ConfigError:
    by_lower = {k.lower(): k for k in _BY_KEY}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = (
        f"; did you mean {by_lower[close[0]]!r}?"
        if close
        else "; see `gibbous config --help` for the keys"
    )
    return ConfigError(f"unknown configuration key {key!r}{hint}")


def _set_path(config: Config, path: str, value: object) -> Config:
    head, _, rest = path.partition(".")
    changes: dict[str, Any] = {head: value}
    if rest:
        changes = {head: replace(getattr(config, head), **{rest: value})}
    return replace(config, **changes)


def build_config(
    document: Mapping[str, Any] | None = None,
    *,
    environment: Mapping[str, str] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Defaults < YAML document < GIBBOUS_* environment < --set overrides."""
    values: dict[str, object] = {}
    problems: list[str] = []

    def accept(key: str, value: object) -> None:
        key = LUNA_SPELLINGS.get(key, key)
        if key not in _BY_KEY:
            problems.append(str(_unknown(key)))
            return
        values[key] = value

    if document is not None:
        if not isinstance(document, Mapping):
            raise ConfigError("configuration file must be a YAML mapping of option names to values")
        options = {k: v for k, v in document.items() if k not in INSTALL_KEYS}
        for key, value in flatten(options).items():
            # A null is "not set", as in Helm values (P07's `clusterID:`).
            if value is not None:
                accept(key, value)
    for name, value in sorted((environment or {}).items()):
        if name.startswith("GIBBOUS_") and name not in ("GIBBOUS_CONFIG",):
            accept(name[len("GIBBOUS_") :].replace("__", "."), value)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            problems.append(f"--set {item!r}: expected key=value")
            continue
        accept(key.strip(), value)

    config = Config()
    for key, raw in values.items():
        option = _BY_KEY[key]
        try:
            config = _set_path(config, option.attribute, option.value_type.parse(raw, key))
        except ConfigError as error:
            problems.append(str(error))
    problems.extend(cross_checks(config))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return config


def rendered_value(config: Config, option: Option) -> object:
    """The option's value in `config` as it would be written in YAML."""
    value: Any = config
    for part in option.attribute.split("."):
        value = getattr(value, part)
    return option.value_type.render(value)


def render_config(config: Config) -> dict[str, object]:
    """Every key with its value as it would be written in YAML."""
    return {option.key: rendered_value(config, option) for option in OPTIONS}


def describe_options() -> list[tuple[str, object, str]]:
    """(key, default as written in YAML, help) for --help and the docs."""
    defaults = Config()
    return [(option.key, rendered_value(defaults, option), option.help) for option in OPTIONS]

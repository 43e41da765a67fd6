"""Reading the configuration file and environment (the I/O half of gibbous.core.settings.loader)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config


def read_document(path: str) -> Any:
    """The YAML document of a configuration or Helm values file. Raises ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return {} if document is None else document


def load_config(
    path: str | None,
    overrides: list[str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> Config:
    """Defaults < file < GIBBOUS_* environment < overrides. Raises ConfigError."""
    document = read_document(path) if path else None
    env = os.environ if environment is None else environment
    return build_config(document, environment=env, overrides=overrides)

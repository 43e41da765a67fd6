"""Every option, section by section, in the order `--help`, `gibbous config` and the
chart's values.yaml list them."""

from __future__ import annotations

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.options.aws import AWS
from gibbous.core.settings.options.azure import AZURE
from gibbous.core.settings.options.consolidation import CONSOLIDATION
from gibbous.core.settings.options.core import GENERAL
from gibbous.core.settings.options.gcp import GCP
from gibbous.core.settings.options.lifecycle import HOT_NODE, SCALE_DOWN
from gibbous.core.settings.options.logs import LOGGING
from gibbous.core.settings.options.oci import OCI
from gibbous.core.settings.options.overhead import NODE_OVERHEAD

SECTIONS: tuple[Section, ...] = (
    GENERAL,
    HOT_NODE,
    SCALE_DOWN,
    CONSOLIDATION,
    NODE_OVERHEAD,
    LOGGING,
    AWS,
    GCP,
    AZURE,
    OCI,
)
OPTIONS: tuple[Option, ...] = tuple(option for section in SECTIONS for option in section.options)

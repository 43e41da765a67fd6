"""Consolidation that replaces nodes (`gibbous.core.lifecycle.consolidation`): a Gibbous
option, Luna has none (its scale-down only deletes)."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import BOOLEAN, DURATION, PERCENT, choice


@dataclass(frozen=True)
class ConsolidationConfig:
    enabled: bool = True
    candidates: str = "under-used"
    min_savings_percent: float = 10.0
    validation_delay_s: float = 15.0
    multi_node: bool = True


CONSOLIDATION = Section(
    "Consolidation",
    (
        Option(
            key="consolidation.enabled",
            attribute="consolidation.enabled",
            value_type=BOOLEAN,
            help="replace under-used bin-pack nodes by cheaper ones (false: scale-down only deletes, as Luna)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="consolidation.candidates",
            attribute="consolidation.candidates",
            value_type=choice(("under-used", "all")),
            help="under-used: nodes below scaleDown.binPackNodeUtilizationThreshold; all: any bin-pack node whose pods have a cheaper home (Karpenter's WhenEmptyOrUnderutilized)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="consolidation.minSavingsPercent",
            attribute="consolidation.min_savings_percent",
            value_type=PERCENT,
            help="act only when the replacement costs at least this % less than the nodes it retires",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="consolidation.validationDelay",
            attribute="consolidation.validation_delay_s",
            value_type=DURATION,
            help="a replacement must still pay this long after it was found",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="consolidation.multiNode",
            attribute="consolidation.multi_node",
            value_type=BOOLEAN,
            help="also replace several under-used nodes by fewer",
            luna=None,
            since="0.1.0",
        ),
    ),
)

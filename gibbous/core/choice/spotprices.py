"""Spot prices from AWS, replacing `spotPriceRatioEstimate` where AWS has a number.

* Live prices (`ec2:DescribeSpotPriceHistory`, what Karpenter reads): a type's spot price is
  the mean of the latest price in each of its zones.
* Spot Instance Advisor data (`aws.useSpotAdvisor`; Luna's P04): the public JSON the advisor
  page loads, which an operator saves to a file (Gibbous does not download it). Per region,
  OS and type it gives `s`, the average saving over on-demand in percent, and `r`, the index
  of the interruption-frequency range (0: <5%, 1: 5-10%, 2: 10-15%, 3: 15-20%, 4: >20%).
  The spot price is on-demand x (1 - s/100); `aws.maxSpotInterruptBucket` and
  `aws.maxSpotPriceRatio` take spot off types above them, and off types the data does not
  cover while either limit is set (their risk is unknown).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import ConfigError


@dataclass(frozen=True)
class AdvisorEntry:
    savings_percent: float
    bucket: int


def parse_spot_advisor(
    document: object, region: str, operating_system: str = "Linux"
) -> dict[str, AdvisorEntry]:
    """The advisor's entries for `region` and `operating_system`, by instance type."""
    if not isinstance(document, Mapping) or not isinstance(document.get("spot_advisor"), Mapping):
        raise ConfigError("aws.spotAdvisorFile: not Spot Instance Advisor data (no spot_advisor)")
    regional = document["spot_advisor"].get(region)
    if not isinstance(regional, Mapping):
        raise ConfigError(f"aws.spotAdvisorFile: no data for region {region}")
    entries = regional.get(operating_system)
    if not isinstance(entries, Mapping):
        raise ConfigError(f"aws.spotAdvisorFile: no {operating_system} data for {region}")
    out = {}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping):
            continue
        savings, bucket = entry.get("s"), entry.get("r")
        if isinstance(savings, int | float) and isinstance(bucket, int) and 0 <= savings < 100:
            out[str(name)] = AdvisorEntry(float(savings), bucket)
    return out


def with_spot_advisor(
    types: Iterable[InstanceType],
    advisor: Mapping[str, AdvisorEntry],
    *,
    max_bucket: int | None,
    max_ratio: float | None,
) -> list[InstanceType]:
    out = []
    limited = max_bucket is not None or max_ratio is not None
    for instance_type in types:
        entry = advisor.get(instance_type.name)
        if entry is None:
            out.append(dataclasses.replace(instance_type, spot_offered=not limited))
            continue
        ratio = 1 - entry.savings_percent / 100
        allowed = (max_bucket is None or entry.bucket <= max_bucket) and (
            max_ratio is None or ratio <= max_ratio
        )
        out.append(
            dataclasses.replace(
                instance_type,
                spot_price=round(instance_type.on_demand_price * ratio, 6),
                spot_offered=allowed,
            )
        )
    return out


def with_live_spot_prices(
    types: Iterable[InstanceType], prices: Mapping[tuple[str, str], float]
) -> list[InstanceType]:
    """`prices` by (type, zone); a type with none keeps its catalog price or estimate."""
    by_type: dict[str, dict[str, float]] = {}
    for (name, zone), price in prices.items():
        by_type.setdefault(name, {})[zone] = price
    out = []
    for instance_type in types:
        zonal = by_type.get(instance_type.name, {})
        wanted = (
            [zonal[z] for z in instance_type.zones if z in zonal]
            if instance_type.zones
            else list(zonal.values())
        )
        out.append(
            dataclasses.replace(instance_type, spot_price=round(sum(wanted) / len(wanted), 6))
            if wanted
            else instance_type
        )
    return out

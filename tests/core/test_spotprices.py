"""Spot prices from AWS replace the ratio estimate: live prices by zone, or the Spot
Instance Advisor's savings and interruption buckets with Luna's two limits."""

from __future__ import annotations

import dataclasses

import pytest

from gibbous.core.choice.selection import build_offers
from gibbous.core.choice.spotprices import (
    parse_spot_advisor,
    with_live_spot_prices,
    with_spot_advisor,
)
from gibbous.core.errors import ConfigError
from tests.factories import catalog, config

# The shape of the advisor's public JSON (spot-advisor-data.json), trimmed.
ADVISOR = {
    "global_rate": "<10%",
    "ranges": [
        {"index": 0, "label": "<5%", "dots": 0, "max": 5},
        {"index": 1, "label": "5-10%", "dots": 1, "max": 11},
        {"index": 2, "label": "10-15%", "dots": 2, "max": 16},
        {"index": 3, "label": "15-20%", "dots": 3, "max": 22},
        {"index": 4, "label": ">20%", "dots": 4, "max": 100},
    ],
    "spot_advisor": {
        "us-west-2": {
            "Linux": {
                "t3a.xlarge": {"s": 70, "r": 0},
                "m5.xlarge": {"s": 60, "r": 3},
                "g4dn.xlarge": {"s": 40, "r": 1},
            },
            "Windows": {"t3a.xlarge": {"s": 50, "r": 1}},
        }
    },
}
TYPES = {t.name: t for t in catalog("aws")}


def test_advisor_savings_become_spot_prices() -> None:
    entries = parse_spot_advisor(ADVISOR, "us-west-2")
    priced = {
        t.name: t
        for t in with_spot_advisor(TYPES.values(), entries, max_bucket=None, max_ratio=None)
    }
    od = TYPES["t3a.xlarge"].on_demand_price
    assert priced["t3a.xlarge"].spot_price == round(od * 0.30, 6)
    assert priced["g4dn.xlarge"].spot_price == round(TYPES["g4dn.xlarge"].on_demand_price * 0.6, 6)
    assert all(t.spot_offered for t in priced.values())  # no limits: nothing taken away


def test_luna_limits_take_spot_off_risky_or_dear_types() -> None:
    entries = parse_spot_advisor(ADVISOR, "us-west-2")
    limited = {
        t.name: t for t in with_spot_advisor(TYPES.values(), entries, max_bucket=1, max_ratio=0.5)
    }
    assert limited["t3a.xlarge"].spot_offered  # bucket 0, ratio 0.3
    assert not limited["m5.xlarge"].spot_offered  # bucket 3 > 1
    assert not limited["g4dn.xlarge"].spot_offered  # ratio 0.6 > 0.5
    assert not limited["c5.12xlarge"].spot_offered  # not in the data: risk unknown
    offers = build_offers(limited.values(), config())
    spot = {o.name for o in offers if o.category == "spot"}
    assert "t3a.xlarge" in spot and "m5.xlarge" not in spot
    assert {o.name for o in offers if o.category == "on-demand"} == set(TYPES)


@pytest.mark.parametrize(
    "document",
    [{}, {"spot_advisor": {}}, {"spot_advisor": {"us-west-2": {"Windows": {}}}}],
)
def test_advisor_data_for_another_region_or_os_is_an_error(document: object) -> None:
    with pytest.raises(ConfigError):
        parse_spot_advisor(document, "us-west-2")


def test_live_prices_are_the_mean_over_the_types_zones() -> None:
    t3a = dataclasses.replace(TYPES["t3a.xlarge"], zones=("us-west-2a", "us-west-2b"))
    prices = {
        ("t3a.xlarge", "us-west-2a"): 0.05,
        ("t3a.xlarge", "us-west-2b"): 0.07,
        ("t3a.xlarge", "us-west-2d"): 9.99,  # a zone the type is not offered in here
    }
    (priced,) = with_live_spot_prices([t3a], prices)
    assert priced.spot_price == 0.06
    (unpriced,) = with_live_spot_prices([TYPES["m5.xlarge"]], prices)
    assert unpriced.spot_price == TYPES["m5.xlarge"].spot_price


@pytest.mark.parametrize(("max_bucket", "offered"), [(3, True), (2, False)])
def test_a_type_at_the_highest_allowed_interruption_bucket_keeps_spot(
    max_bucket: int, offered: bool
) -> None:
    # m5.xlarge is in bucket 3 of the advisor's data: Luna's limit is "at most", so a
    # maximum of 3 keeps its spot offer and 2 takes it off.
    entries = parse_spot_advisor(ADVISOR, "us-west-2")
    limited = {
        t.name: t
        for t in with_spot_advisor(TYPES.values(), entries, max_bucket=max_bucket, max_ratio=1.0)
    }
    assert limited["m5.xlarge"].spot_offered is offered

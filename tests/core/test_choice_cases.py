"""Choice-layer rules the mutation report (docs/mutation.md) showed no test held, with
expected values from the providers' documentation, computed by hand here."""

from __future__ import annotations

import pytest

from gibbous.core.choice.catalog import _tiered_memory_reservation
from gibbous.core.choice.spotprices import AdvisorEntry, parse_spot_advisor
from gibbous.core.errors import ConfigError

GIB = 2**30
MIB = 2**20


@pytest.mark.parametrize(
    ("memory", "reserved"),
    [
        # GKE's kube-reserved memory: 255 MiB below 1 GiB; else 25 % of the first 4 GiB,
        # 20 % of the next 4, 10 % of the next 8, 6 % of the next 112, 2 % above 128 GiB.
        (GIB // 2, 255 * MIB),
        (2 * GIB, GIB // 2),  # 25 % of 2 GiB
        (16 * GIB, round(2.6 * GIB)),  # 1 + 0.8 + 0.8
        (128 * GIB, round(9.32 * GIB)),  # 1 + 0.8 + 0.8 + 6.72
        (200 * GIB, round(10.76 * GIB)),  # ... + 2 % of 72
    ],
)
def test_gke_memory_reservation_tiers(memory: int, reserved: int) -> None:
    assert _tiered_memory_reservation(memory) == reserved


def test_spot_advisor_entries_need_a_saving_below_100_and_a_whole_bucket() -> None:
    # The advisor's JSON: per region and OS, "s" = savings over on-demand in percent,
    # "r" = interruption-frequency bucket 0-4.
    document = {
        "spot_advisor": {
            "us-west-2": {
                "Linux": {
                    "m5.large": {"s": 70, "r": 1},
                    "c5.large": {"s": 99.5, "r": 0},
                    "free.large": {"s": 100, "r": 0},
                    "odd.large": {"s": 50, "r": "1"},
                    "text.large": {"s": "50", "r": 1},
                    "negative.large": {"s": -1, "r": 1},
                }
            }
        }
    }
    assert parse_spot_advisor(document, "us-west-2") == {
        "m5.large": AdvisorEntry(70.0, 1),
        "c5.large": AdvisorEntry(99.5, 0),
    }
    with pytest.raises(ConfigError, match="no data for region eu-west-1"):
        parse_spot_advisor(document, "eu-west-1")

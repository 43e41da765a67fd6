"""Times as the API server writes them (`2027-01-15T08:00:00Z`), read without a clock
library (the core imports none)."""

from __future__ import annotations

import re

_RFC3339_UTC = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?Z", re.ASCII)


def epoch_seconds(stamp: str) -> float | None:
    """`2027-01-15T08:00:00Z` (how the API server writes times) -> seconds since the epoch.
    Pure arithmetic (days-from-civil), so the core needs no clock library."""
    match = _RFC3339_UTC.fullmatch(stamp)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return float(days * 86400 + hour * 3600 + minute * 60 + second)

"""Back-off of (instance type, price category[, zone]) pairs after failed launches.

A stock-out, an exhausted quota or a launch that missed `scaleUpTimeout` puts the
pair in back-off for `backoffDuration`; the planner then takes the next cheapest
candidate at once. An entry without a zone covers every zone. Time is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FailureKind(StrEnum):
    INSUFFICIENT_CAPACITY = "insufficient-capacity"
    QUOTA = "quota"
    LAUNCH_TIMEOUT = "launch-timeout"
    REGISTRATION_TIMEOUT = "registration-timeout"
    INTERRUPTED = "spot-interruption"


@dataclass(frozen=True, slots=True)
class BackoffEntry:
    instance_type: str
    category: str
    zone: str  # "" = every zone
    until: float
    kind: FailureKind


@dataclass(frozen=True)
class Backoffs:
    entries: tuple[BackoffEntry, ...] = field(default=())

    def add(
        self,
        *,
        instance_type: str,
        category: str,
        zone: str,
        kind: FailureKind,
        now: float,
        duration_s: float,
    ) -> Backoffs:
        """A new registry with the pair backed off until now + duration (extending, never shortening)."""
        until = now + duration_s
        kept = []
        for entry in self.entries:
            if (entry.instance_type, entry.category, entry.zone) == (instance_type, category, zone):
                until = max(until, entry.until)
            elif entry.until > now:
                kept.append(entry)
        return Backoffs((*kept, BackoffEntry(instance_type, category, zone, until, kind)))

    def active(self, now: float) -> tuple[BackoffEntry, ...]:
        return tuple(e for e in self.entries if e.until > now)

    def blocked_pairs(self, now: float) -> frozenset[tuple[str, str]]:
        """(type, category) pairs backed off in every zone: what the planner must skip."""
        return frozenset((e.instance_type, e.category) for e in self.active(now) if not e.zone)

    def blocked_zones(self, instance_type: str, category: str, now: float) -> frozenset[str]:
        return frozenset(
            e.zone
            for e in self.active(now)
            if e.zone and (e.instance_type, e.category) == (instance_type, category)
        )

    def is_blocked(self, instance_type: str, category: str, zone: str, now: float) -> bool:
        return any(
            (e.instance_type, e.category) == (instance_type, category) and e.zone in ("", zone)
            for e in self.active(now)
        )

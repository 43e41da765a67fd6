"""Back-off of (instance type, price category[, zone]) pairs after failed launches.

A stock-out, an exhausted quota or a launch that missed `scaleUpTimeout` puts the
pair in back-off for `backoffDuration`; the planner then takes the next cheapest
candidate at once. An entry without a zone covers every zone. Time is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class FailureKind(StrEnum):
    INSUFFICIENT_CAPACITY = "insufficient-capacity"
    QUOTA = "quota"
    LAUNCH_TIMEOUT = "launch-timeout"
    REGISTRATION_TIMEOUT = "registration-timeout"
    INTERRUPTED = "spot-interruption"
    PROVIDER_ERROR = "provider-error"


_KINDS = frozenset(kind.value for kind in FailureKind)


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

    def merged(self, other: Backoffs) -> Backoffs:
        """Both registries; a pair in both keeps the later end (and that entry's kind)."""
        latest: dict[tuple[str, str, str], BackoffEntry] = {}
        for entry in (*self.entries, *other.entries):
            key = (entry.instance_type, entry.category, entry.zone)
            if key not in latest or entry.until > latest[key].until:
                latest[key] = entry
        return Backoffs(tuple(latest.values()))

    def to_records(self, now: float) -> list[dict[str, object]]:
        """The active entries as plain JSON values (`until` in the clock's seconds)."""
        return [
            {
                "instanceType": e.instance_type,
                "category": e.category,
                "zone": e.zone,
                "until": e.until,
                "kind": str(e.kind),
            }
            for e in self.active(now)
        ]

    @classmethod
    def from_records(cls, records: object) -> Backoffs:
        """Entries from `to_records` output; malformed ones are skipped (the registry is an
        optimisation: losing an entry costs one retry, refusing all of them costs more)."""
        entries = []
        for record in records if isinstance(records, list) else []:
            if not isinstance(record, Mapping):
                continue
            until = record.get("until")
            texts = [record.get(k) for k in ("instanceType", "category", "zone", "kind")]
            if (
                not isinstance(until, int | float)
                or isinstance(until, bool)
                or not math.isfinite(until)
                or not all(isinstance(t, str) for t in texts)
                or texts[3] not in _KINDS
                or not texts[0]
                or not texts[1]
            ):
                continue
            instance_type, category, zone, kind = (str(t) for t in texts)
            entries.append(
                BackoffEntry(instance_type, category, zone, float(until), FailureKind(kind))
            )
        return cls(()).merged(cls(tuple(entries)))

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

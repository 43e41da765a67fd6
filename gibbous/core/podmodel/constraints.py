"""Pod annotations that constrain the instance chosen for a pod.

Parsing collects every problem on a pod before raising, so the validating
webhook can tell the user everything that is wrong in one message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from gibbous.core import keys
from gibbous.core.errors import GibbousError, InvalidAnnotationError, InvalidAnnotationsError
from gibbous.core.grammar.numerals import parse_decimal, parse_whole
from gibbous.core.grammar.pattern import PatternError, UserPattern, compile_pattern

T = TypeVar("T")


class PriceCategory(StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


ALL_CATEGORIES = frozenset(PriceCategory)

OFFERINGS_ACCEPTED = '"spot", "on-demand" or "spot,on-demand"'
_NAME_LIST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_LIST_ITEMS = 64


@dataclass(frozen=True)
class InstanceConstraints:
    """What a pod allows for its node. None = unconstrained."""

    offerings: frozenset[PriceCategory] | None = None
    max_cost_per_hour: float | None = None
    type_pattern: UserPattern | None = None
    gpu_skus: frozenset[str] | None = None  # upper-case SKU names
    max_gpus: int | None = None
    families_included: frozenset[str] | None = None  # lower-case
    families_excluded: frozenset[str] = frozenset()

    def has_any(self) -> bool:
        return any(
            (
                self.offerings is not None,
                self.max_cost_per_hour is not None,
                self.type_pattern is not None,
                self.gpu_skus is not None,
                self.max_gpus is not None,
                self.families_included is not None,
                bool(self.families_excluded),
            )
        )

    def describe(self) -> list[str]:
        """Short phrases for messages: `T4/P4`, `under $4.75/hr`, ..."""
        out = []
        if self.gpu_skus is not None:
            out.append("GPU " + "/".join(sorted(self.gpu_skus)))
        if self.max_gpus is not None:
            out.append(f"at most {self.max_gpus} GPUs")
        if self.type_pattern is not None:
            out.append(f"type matching {self.type_pattern.source!r}")
        if self.families_included is not None:
            out.append("family in " + ",".join(sorted(self.families_included)))
        if self.families_excluded:
            out.append("family not in " + ",".join(sorted(self.families_excluded)))
        if self.offerings is not None:
            out.append("offerings " + ",".join(sorted(self.offerings)))
        if self.max_cost_per_hour is not None:
            out.append(f"under ${self.max_cost_per_hour:g}/hr")
        return out


def parse_offerings(value: str, key: str = keys.INSTANCE_OFFERINGS) -> frozenset[PriceCategory]:
    parts = [p.strip() for p in value.split(",")]
    try:
        categories = frozenset(PriceCategory(p) for p in parts)
    except ValueError:
        raise InvalidAnnotationError(key, value, OFFERINGS_ACCEPTED) from None
    if len(categories) != len(parts):
        raise InvalidAnnotationError(key, value, OFFERINGS_ACCEPTED, "repeated category")
    return categories


def _parse_max_cost(value: str) -> float:
    accepted = "a positive number of dollars per hour in ASCII digits, e.g. 4.75"
    cost = parse_decimal(value.strip(" "))
    if cost is None or not cost > 0:
        raise InvalidAnnotationError(keys.INSTANCE_MAX_COST, value, accepted)
    return cost


def _parse_regexp(value: str) -> UserPattern:
    try:
        return compile_pattern(value)
    except PatternError as error:
        raise InvalidAnnotationError(
            keys.INSTANCE_TYPE_REGEXP,
            value,
            "an RE2 regular expression matched against the instance type name, e.g. ^g5\\.xlarge$",
            str(error),
        ) from None


def _parse_names(key: str, value: str, what: str, example: str) -> list[str]:
    accepted = f"a comma-separated list of {what}, e.g. {example}"
    items = [p.strip() for p in value.split(",")]
    if not items or len(items) > MAX_LIST_ITEMS or any(not _NAME_LIST.fullmatch(i) for i in items):
        raise InvalidAnnotationError(key, value, accepted)
    return items


def _parse_max_gpus(value: str) -> int:
    accepted = "a whole number >= 0 written in ASCII digits, e.g. 2"
    text = value.strip(" ")
    count = parse_whole(text) if len(text) <= 6 else None
    if count is None:
        raise InvalidAnnotationError(keys.INSTANCE_MAX_GPUS, value, accepted)
    return count


class _Collector:
    """Parses annotations one by one, keeping every error instead of stopping at the first."""

    def __init__(self, annotations: Mapping[str, object]) -> None:
        self.annotations = annotations
        self.problems: list[GibbousError] = []

    def get(self, key: str, parse: Callable[[str], T]) -> T | None:
        raw = self.annotations.get(key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.problems.append(InvalidAnnotationError(key, str(raw), "a string"))
            return None
        try:
            return parse(raw)
        except GibbousError as error:
            self.problems.append(error)
            return None


def _lower_names(key: str, example: str) -> Callable[[str], frozenset[str]]:
    return lambda v: frozenset(
        s.lower() for s in _parse_names(key, v, "instance families", example)
    )


def _parse_gpu_skus(value: str) -> frozenset[str]:
    names = _parse_names(keys.INSTANCE_GPU_SKUS, value, "GPU SKUs", "T4,L4,A10G")
    return frozenset(s.upper() for s in names)


def parse_bool_annotation(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise InvalidAnnotationError(key, value, '"true" or "false"')
    return text == "true"


_PARSED_KEYS = (*keys.NODE_CONSTRAINT_ANNOTATIONS, keys.DO_NOT_EVICT)
_PARSED_KEY_SET = frozenset(_PARSED_KEYS)
_NO_CONSTRAINTS = InstanceConstraints()
_TEXT_OR_ABSENT = frozenset((str, type(None)))


def parse_constraints(annotations: Mapping[str, object]) -> InstanceConstraints:
    """Parse the Luna instance annotations; raise InvalidAnnotationsError listing every problem."""
    # The webhook's hot path: most pods carry none of these, and the pods of one workload
    # carry the same values, so parse each distinct set once.
    if not annotations or _PARSED_KEY_SET.isdisjoint(annotations):
        return _NO_CONSTRAINTS
    values = tuple(map(annotations.get, _PARSED_KEYS))
    if _TEXT_OR_ABSENT.issuperset(map(type, values)) and (
        sum(len(v) for v in values if isinstance(v, str)) <= MAX_CACHED_CHARS
    ):
        return _parse_cached(values)
    return _parse(annotations)


# The memo holds at most 1,024 sets of at most this many characters (2 MiB), whatever pods
# carry: longer sets, which no real workload writes, are parsed afresh.
MAX_CACHED_CHARS = 2048


@functools.lru_cache(maxsize=1024)
def _parse_cached(values: tuple[str | None, ...]) -> InstanceConstraints:
    return _parse({k: v for k, v in zip(_PARSED_KEYS, values, strict=True) if v is not None})


def _parse(annotations: Mapping[str, object]) -> InstanceConstraints:
    collect = _Collector(annotations)
    constraints = InstanceConstraints(
        offerings=collect.get(keys.INSTANCE_OFFERINGS, parse_offerings),
        max_cost_per_hour=collect.get(keys.INSTANCE_MAX_COST, _parse_max_cost),
        type_pattern=collect.get(keys.INSTANCE_TYPE_REGEXP, _parse_regexp),
        gpu_skus=collect.get(keys.INSTANCE_GPU_SKUS, _parse_gpu_skus),
        max_gpus=collect.get(keys.INSTANCE_MAX_GPUS, _parse_max_gpus),
        families_included=collect.get(
            keys.INSTANCE_FAMILY_INCLUSIONS, _lower_names(keys.INSTANCE_FAMILY_INCLUSIONS, "g5,g6")
        ),
        families_excluded=collect.get(
            keys.INSTANCE_FAMILY_EXCLUSIONS, _lower_names(keys.INSTANCE_FAMILY_EXCLUSIONS, "g3,p2")
        )
        or frozenset(),
    )
    collect.get(keys.DO_NOT_EVICT, lambda v: parse_bool_annotation(keys.DO_NOT_EVICT, v))
    if collect.problems:
        raise InvalidAnnotationsError(collect.problems)
    return constraints


_NODE_CONSTRAINT_KEYS = frozenset(keys.NODE_CONSTRAINT_ANNOTATIONS)


def has_node_constraint_annotations(annotations: Mapping[str, object]) -> bool:
    return not _NODE_CONSTRAINT_KEYS.isdisjoint(annotations)


# (annotation, the value that forbids eviction): Gibbous/Luna, Cluster Autoscaler, Karpenter.
_EVICTION_OPT_OUTS = (
    (keys.DO_NOT_EVICT, "true"),
    (keys.CA_SAFE_TO_EVICT, "false"),
    (keys.KARPENTER_DO_NOT_DISRUPT, "true"),
)


def ignored_by_opt_out(annotations: Mapping[str, object]) -> bool:
    """`pod.elotl.co/ignore: "true"`: the pod is not managed, whatever its labels."""
    return str(annotations.get(keys.IGNORE, "")).strip().lower() == "true"


def unknown_luna_annotations(annotations: Mapping[str, object]) -> list[str]:
    """Keys under Luna's prefixes that Gibbous does not act on (typos, or Luna features
    Gibbous lacks), sorted."""
    return sorted(
        key
        for key in annotations
        if key.startswith(keys.LUNA_ANNOTATION_PREFIXES) and key not in keys.KNOWN_LUNA_ANNOTATIONS
    )


def do_not_evict_reason(annotations: Mapping[str, object]) -> str:
    """The opt-out annotation that forbids evicting the pod, as `key=value`, or ""."""
    for key, forbidding in _EVICTION_OPT_OUTS:
        if str(annotations.get(key, "")).strip().lower() == forbidding:
            return f"{key}={forbidding}"
    return ""

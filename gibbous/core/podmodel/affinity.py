"""Required node affinity: does a node with these labels satisfy a pod?

The pod's `spec.nodeSelector` (all must match) is ANDed with the OR of
`requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms` (each an AND
of matchExpressions), exactly as the NodeAffinity plugin evaluates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.grammar.numerals import parse_int64
from gibbous.core.podmodel.pods import Pod, spec

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.operator == "In":
            return present and value in self.values
        if self.operator == "NotIn":
            return not present or value not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator in ("Gt", "Lt") and present and len(self.values) == 1:
            # Go's strconv.ParseInt on both sides, as labels.Requirement does.
            left, right = parse_int64(value), parse_int64(self.values[0])
            if left is None or right is None:
                return False
            return left > right if self.operator == "Gt" else left < right
        return False

    def allowed_values(self) -> frozenset[str] | None:
        """Values this requirement admits for its key, or None if it admits any."""
        if self.operator == "In":
            return frozenset(self.values)
        return None


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    """OR of terms; each term is an AND of requirements. No terms = any node."""

    terms: tuple[tuple[Requirement, ...], ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if not self.terms:
            return True
        return any(all(r.matches(labels) for r in term) for term in self.terms)

    def keys(self) -> frozenset[str]:
        return frozenset(r.key for term in self.terms for r in term)

    def allowed_values(self, key: str) -> frozenset[str] | None:
        """Union over terms of the values admitted for `key` (None: unrestricted)."""
        if not self.terms:
            return None
        union: set[str] = set()
        for term in self.terms:
            admitted: frozenset[str] | None = None
            for requirement in term:
                if requirement.key != key:
                    continue
                values = requirement.allowed_values()
                if values is not None:
                    admitted = values if admitted is None else admitted & values
            if admitted is None:
                return None
            union |= admitted
        return frozenset(union)


def _requirements(expressions: Any) -> list[Requirement]:
    out = []
    if isinstance(expressions, list):
        for expression in expressions:
            if not isinstance(expression, Mapping):
                continue
            values = expression.get("values") or []
            out.append(
                Requirement(
                    key=str(expression.get("key", "")),
                    operator=str(expression.get("operator", "")),
                    values=tuple(str(v) for v in values) if isinstance(values, list) else (),
                )
            )
    return out


def pod_node_affinity(pod: Pod) -> NodeAffinity:
    pod_spec = spec(pod)
    selector = pod_spec.get("nodeSelector")
    items = sorted(selector.items()) if isinstance(selector, Mapping) else []
    base = tuple(Requirement(str(k), "In", (str(v),)) for k, v in items)
    affinity = pod_spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = (
        node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(node_affinity, Mapping)
        else None
    )
    raw_terms = required.get("nodeSelectorTerms") if isinstance(required, Mapping) else None
    if not isinstance(raw_terms, list) or not raw_terms:
        return NodeAffinity((base,) if base else ())
    terms = []
    for term in raw_terms:
        if not isinstance(term, Mapping):
            continue
        requirements = _requirements(term.get("matchExpressions"))
        if not requirements and not term.get("matchFields"):
            # Upstream: an empty term matches no node.
            requirements.append(Requirement("", "In", ()))
        # matchFields can only name metadata.name; a node not yet created has no
        # name, so such a term never matches a new node.
        if term.get("matchFields"):
            requirements.append(Requirement("metadata.name", "In", ()))
        terms.append(base + tuple(requirements))
    return NodeAffinity(tuple(terms))

"""How much scheduling rule a pod carries, counted before any rule is compiled.

The API server bounds a pod only by its size (about 1.5 MB), which leaves room for 5,000
required nodeSelectorTerms; every rule Gibbous compiles is matched against every candidate
instance type and node, so a pod's rules are counted first and a pod beyond
`MAX_RULE_ITEMS` is set aside (docs/decisions.md, "Hostile callers, second pass").

One item is: a nodeSelector entry, a toleration, a node-selector term, a match expression
or field, a value of one, a required pod (anti-)affinity term, a topology spread
constraint, and each label, expression, value, namespace and label key of their selectors.
Preferred terms are not counted: Gibbous does not read them. The count is one pass over
what is there; shapes the rules cannot read count as nothing here (the readers say so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gibbous.core.podmodel.pods import Pod, spec

# The largest real manifests we know carry tens of items (a few terms of a few expressions);
# one `In` listing every EC2 instance type is about 900. 2,000 is above both, and the
# planner pays for 2,000 items in milliseconds per decision.
MAX_RULE_ITEMS = 2000


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _expressions(expressions: Any) -> int:
    return sum(
        1 + len(_list(_mapping(expression).get("values"))) for expression in _list(expressions)
    )


def _selector(selector: Any) -> int:
    selector = _mapping(selector)
    return len(_mapping(selector.get("matchLabels"))) + _expressions(
        selector.get("matchExpressions")
    )


def _pod_term(term: Any) -> int:
    term = _mapping(term)
    return (
        1
        + _selector(term.get("labelSelector"))
        + _selector(term.get("namespaceSelector"))
        + len(_list(term.get("namespaces")))
        + len(_list(term.get("matchLabelKeys")))
        + len(_list(term.get("mismatchLabelKeys")))
    )


def rule_items(pod: Pod) -> int:
    """The number of rule items in `pod` (see the module's docstring)."""
    pod_spec = spec(pod)
    total = len(_mapping(pod_spec.get("nodeSelector"))) + len(_list(pod_spec.get("tolerations")))
    affinity = _mapping(pod_spec.get("affinity"))
    required = _mapping(
        _mapping(affinity.get("nodeAffinity")).get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    for raw_term in _list(required.get("nodeSelectorTerms")):
        term = _mapping(raw_term)
        total += 1 + _expressions(term.get("matchExpressions"))
        total += _expressions(term.get("matchFields"))
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = _mapping(affinity.get(kind)).get("requiredDuringSchedulingIgnoredDuringExecution")
        total += sum(_pod_term(term) for term in _list(terms))
    for raw_constraint in _list(pod_spec.get("topologySpreadConstraints")):
        constraint = _mapping(raw_constraint)
        total += (
            1
            + _selector(constraint.get("labelSelector"))
            + len(_list(constraint.get("matchLabelKeys")))
        )
    return total

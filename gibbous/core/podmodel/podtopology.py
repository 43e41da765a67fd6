"""The inter-pod rules a pod brings to scheduling: required pod affinity and
anti-affinity and hard (`DoNotSchedule`) topology spread, read as kube-scheduler
reads them.

* Label selectors (`metav1.LabelSelectorAsSelector`): a missing selector selects no
  pod; `{}` selects every pod.
* Affinity-term namespaces (`getNamespacesFromPodAffinityTerm`): no `namespaces` and
  no `namespaceSelector` means the pod's own namespace; otherwise the listed ones, and
  with a `namespaceSelector` every namespace (Gibbous reads no Namespace objects, so a
  non-empty namespace selector is taken as selecting all: docs/decisions.md).
* `matchLabelKeys` / `mismatchLabelKeys` of affinity terms and `matchLabelKeys` of
  spread constraints are merged into the selector from the pod's own labels, as the API
  server does at creation (`applyMatchLabelKeysAndMismatchLabelKeys`) and the scheduler
  does again for spread (`mergeLabelSetWithSelector`); doing it twice changes nothing.
* Spread: only `whenUnsatisfiable: DoNotSchedule` filters; `minDomains` defaults to 1,
  `nodeAffinityPolicy` to Honor, `nodeTaintsPolicy` to Ignore. The system default
  constraints are ScheduleAnyway, so they never filter.

Preferred terms and ScheduleAnyway constraints are preferences: they are not read here
(docs/decisions.md says what Gibbous does about them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core import keys
from gibbous.core.errors import ManifestError, quoted
from gibbous.core.podmodel.affinity import Requirement
from gibbous.core.podmodel.pods import Pod, as_map, labels_of, namespace_of, spec

_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed `metav1.LabelSelector` (matchLabels become `In` requirements)."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def with_requirements(self, extra: tuple[Requirement, ...]) -> LabelSelector:
        known = set(self.requirements)
        return LabelSelector(self.requirements + tuple(r for r in extra if r not in known))


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """One required (anti-)affinity term. `selector` None selects no pod; `namespaces`
    None means every namespace."""

    topology_key: str
    selector: LabelSelector | None
    namespaces: frozenset[str] | None

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.selector is None:
            return False
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """A hard topology spread constraint; it counts pods of the incoming pod's namespace."""

    topology_key: str
    max_skew: int
    selector: LabelSelector | None
    min_domains: int = 1
    honor_node_affinity: bool = True
    honor_taints: bool = False

    def selects(self, labels: Mapping[str, str]) -> bool:
        return self.selector is not None and self.selector.matches(labels)


@dataclass(frozen=True)
class PodTopology:
    """What the inter-pod rules need of one pod: who it is (namespace, labels) and its
    own required terms."""

    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    affinity: tuple[PodAffinityTerm, ...] = ()
    anti_affinity: tuple[PodAffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()

    @property
    def constrained(self) -> bool:
        """Whether the pod has required inter-pod terms or hard spread of its own."""
        return bool(self.affinity or self.anti_affinity or self.spread)

    def topology_keys(self) -> frozenset[str]:
        terms = {t.topology_key for t in (*self.affinity, *self.anti_affinity)}
        return frozenset(terms | {c.topology_key for c in self.spread})


NO_TOPOLOGY = PodTopology()


def _selector(value: object, path: str) -> LabelSelector | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: expected a label selector, got {quoted(value)}")
    selector = value
    requirements: list[Requirement] = []
    match_labels = as_map(selector.get("matchLabels"))
    for key, label in sorted(match_labels.items()):
        requirements.append(Requirement(str(key), "In", (str(label),)))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise ManifestError(f"{path}.matchExpressions: expected a list, got {quoted(expressions)}")
    for index, expression in enumerate(expressions):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, Mapping):
            raise ManifestError(f"{where}: expected a mapping, got {quoted(expression)}")
        operator = expression.get("operator")
        if operator not in _SELECTOR_OPERATORS:
            raise ManifestError(
                f"{where}.operator: {quoted(operator)} is not one of "
                + ", ".join(_SELECTOR_OPERATORS)
            )
        values = expression.get("values") or []
        if not isinstance(values, list):
            raise ManifestError(f"{where}.values: expected a list, got {quoted(values)}")
        requirements.append(
            Requirement(str(expression.get("key", "")), str(operator), tuple(map(str, values)))
        )
    return LabelSelector(tuple(requirements))


def _merged_keys(
    selector: LabelSelector | None,
    labels: Mapping[str, str],
    match_keys: object,
    mismatch_keys: object = None,
) -> LabelSelector | None:
    if selector is None:
        return None
    extra: list[Requirement] = []
    for key in match_keys if isinstance(match_keys, list) else []:
        if isinstance(key, str) and key in labels:
            extra.append(Requirement(key, "In", (labels[key],)))
    for key in mismatch_keys if isinstance(mismatch_keys, list) else []:
        if isinstance(key, str) and key in labels:
            extra.append(Requirement(key, "NotIn", (labels[key],)))
    return selector.with_requirements(tuple(extra)) if extra else selector


def _terms(
    value: object, path: str, namespace: str, labels: Mapping[str, str]
) -> tuple[PodAffinityTerm, ...]:
    terms = []
    for where, term in _entries(value, path):
        topology_key = _topology_key(term, where, keys.HOSTNAME)
        selector = _merged_keys(
            _selector(term.get("labelSelector"), f"{where}.labelSelector"),
            labels,
            term.get("matchLabelKeys"),
            term.get("mismatchLabelKeys"),
        )
        listed = term.get("namespaces") or []
        if not isinstance(listed, list):
            raise ManifestError(f"{where}.namespaces: expected a list, got {quoted(listed)}")
        namespaces: frozenset[str] | None
        if term.get("namespaceSelector") is not None:
            namespaces = None
        elif listed:
            namespaces = frozenset(map(str, listed))
        else:
            namespaces = frozenset((namespace,))
        terms.append(PodAffinityTerm(topology_key, selector, namespaces))
    return tuple(terms)


def _entries(value: object, path: str) -> list[tuple[str, Mapping[str, Any]]]:
    """A list field's items with their paths; a missing list is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{path}: expected a list, got {quoted(value)}")
    return [(f"{path}[{index}]", as_map(raw)) for index, raw in enumerate(value)]


def _topology_key(item: Mapping[str, Any], where: str, example: str) -> str:
    topology_key = item.get("topologyKey")
    if not isinstance(topology_key, str) or not topology_key:
        raise ManifestError(f"{where}.topologyKey: must be set (e.g. {example})")
    return topology_key


def _whole(value: object, where: str, least: int) -> int:
    if type(value) is not int or value < least:
        raise ManifestError(f"{where}: {quoted(value)} is not a whole number >= {least}")
    return value


def _policy(value: object, where: str, default: str) -> str:
    if value is None:
        return default
    if value not in ("Honor", "Ignore"):
        raise ManifestError(f"{where}: {quoted(value)} is not Honor or Ignore")
    return str(value)


def _spread(value: object, labels: Mapping[str, str]) -> tuple[SpreadConstraint, ...]:
    constraints = []
    for where, item in _entries(value, "spec.topologySpreadConstraints"):
        when = item.get("whenUnsatisfiable")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            raise ManifestError(
                f"{where}.whenUnsatisfiable: {quoted(when)} is not DoNotSchedule or ScheduleAnyway"
            )
        topology_key = _topology_key(item, where, keys.ZONE)
        max_skew = _whole(item.get("maxSkew"), f"{where}.maxSkew", 1)
        if when != "DoNotSchedule":
            continue
        min_domains = item.get("minDomains")
        constraints.append(
            SpreadConstraint(
                topology_key=topology_key,
                max_skew=max_skew,
                selector=_merged_keys(
                    _selector(item.get("labelSelector"), f"{where}.labelSelector"),
                    labels,
                    item.get("matchLabelKeys"),
                ),
                min_domains=1
                if min_domains is None
                else _whole(min_domains, f"{where}.minDomains", 1),
                honor_node_affinity=_policy(
                    item.get("nodeAffinityPolicy"), f"{where}.nodeAffinityPolicy", "Honor"
                )
                == "Honor",
                honor_taints=_policy(
                    item.get("nodeTaintsPolicy"), f"{where}.nodeTaintsPolicy", "Ignore"
                )
                == "Honor",
            )
        )
    return tuple(constraints)


def _string_labels(pod: Pod) -> Mapping[str, str]:
    labels = labels_of(pod)
    if all(type(v) is str for v in labels.values()):
        return labels
    return {str(k): str(v) for k, v in labels.items()}


def pod_topology(pod: Pod) -> PodTopology:
    """The pod's inter-pod rules; raise ManifestError naming the field on what the API
    server would refuse."""
    pod_spec = spec(pod)
    namespace = namespace_of(pod)
    labels = _string_labels(pod)
    affinity = as_map(pod_spec.get("affinity"))
    spread = pod_spec.get("topologySpreadConstraints")
    if not affinity and spread is None:
        return PodTopology(namespace, labels)
    base = "spec.affinity"
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    return PodTopology(
        namespace=namespace,
        labels=labels,
        affinity=_terms(
            as_map(affinity.get("podAffinity")).get(required),
            f"{base}.podAffinity.{required}",
            namespace,
            labels,
        ),
        anti_affinity=_terms(
            as_map(affinity.get("podAntiAffinity")).get(required),
            f"{base}.podAntiAffinity.{required}",
            namespace,
            labels,
        ),
        spread=_spread(spread, labels),
    )


def placed_pod_topology(pod: Pod) -> PodTopology:
    """A bound pod as the rules of others see it: its namespace, labels and required
    anti-affinity (which later pods must respect). What cannot be read is left out: a
    running pod is not the one being planned."""
    pod_spec = spec(pod)
    namespace = namespace_of(pod)
    labels = _string_labels(pod)
    anti = as_map(as_map(pod_spec.get("affinity")).get("podAntiAffinity"))
    if not anti:
        return PodTopology(namespace, labels)
    try:
        terms = _terms(
            anti.get("requiredDuringSchedulingIgnoredDuringExecution"), "", namespace, labels
        )
    except ManifestError:
        terms = ()
    return PodTopology(namespace, labels, anti_affinity=terms)


def describe_topology(topology: PodTopology) -> str:
    """Short phrase for messages: `anti-affinity on kubernetes.io/hostname, spread on zone`."""
    parts = []
    if topology.anti_affinity:
        parts.append(
            "required pod anti-affinity on "
            + ", ".join(sorted({t.topology_key for t in topology.anti_affinity}))
        )
    if topology.affinity:
        parts.append(
            "required pod affinity on "
            + ", ".join(sorted({t.topology_key for t in topology.affinity}))
        )
    for constraint in topology.spread:
        parts.append(
            f"topology spread on {constraint.topology_key} (maxSkew {constraint.max_skew}"
            + (f", minDomains {constraint.min_domains}" if constraint.min_domains > 1 else "")
            + ")"
        )
    return "; ".join(parts)

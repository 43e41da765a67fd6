"""Inter-pod rules during one simulation: where pods are, by topology domain, and
whether a node may take one more pod.

The filters are kube-scheduler's (interpodaffinity/filtering.go, podtopologyspread/
filtering.go), evaluated on `Site`s: the nodes that exist, the launches in flight and
the nodes the simulation opens. Where new capacity is planned, Karpenter's domain
universe is used (topology.go, topologygroup.go): a zone that a new node could be put in
is a spread domain with count 0 before any node is there, and a new hostname is always
available, so hostname spread has minimum 0. That universe is never smaller than the
scheduler's, so the minimum is never larger: a placement judged here is one the
scheduler accepts.

A new node whose zone is not decided yet (the provider chooses) counts its pods in every
zone it could get for anti-affinity, and in none for spread and affinity (Karpenter's
`Topology.Record`). A pod with a zone-keyed rule is only placed on nodes whose zone is
decided.

Counts are built once per distinct rule and kept up to date as pods are placed, so a
step costs what the constrained pods need, not pods x nodes per pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core import keys
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.pods import tolerates
from gibbous.core.podmodel.podtopology import PodAffinityTerm, PodTopology, SpreadConstraint

ZONE_KEYS = frozenset((keys.ZONE, keys.ZONE_BETA))
# The domain of a pod on a node whose zone is not decided and could be any.
ANYWHERE = "\x00any"


@dataclass(frozen=True)
class Site:
    """A node as the inter-pod rules see it. `undecided` maps label keys whose value is
    not known yet to the values it could take (empty: any value)."""

    name: str
    labels: Mapping[str, str]
    undecided: Mapping[str, frozenset[str]] = field(default_factory=dict)
    taints: tuple[Mapping[str, Any], ...] = ()

    def domain(self, key: str) -> str | None:
        """The site's value for `key`; None when it has none (or it is undecided)."""
        value = self.labels.get(key)
        if value is not None:
            return value
        if key == keys.HOSTNAME:
            return self.name
        return None

    def possible(self, key: str) -> frozenset[str] | None:
        """Values an undecided key could take (empty = any), None if decided or absent."""
        return self.undecided.get(key)


@dataclass(frozen=True)
class Incoming:
    """The pod being placed, with what the spread inclusion policies look at."""

    topology: PodTopology
    node_affinity: NodeAffinity
    tolerations: tuple[Mapping[str, Any], ...] = ()


def _tolerated(site: Site, tolerations: tuple[Mapping[str, Any], ...]) -> bool:
    return all(
        tolerates(list(tolerations), t)
        for t in site.taints
        if t.get("effect") in ("NoSchedule", "NoExecute")
    )


class _Counter:
    """Pods per domain for one rule, kept current as pods are recorded."""

    def __init__(
        self,
        key: str,
        counts_pod: Callable[[PodTopology], bool],
        includes_site: Callable[[Site], bool],
        *,
        spread_everywhere: bool,
    ) -> None:
        self.key = key
        self.counts_pod = counts_pod
        self.includes_site = includes_site
        # Anti-affinity: a pod on an undecided site counts in every value it could get.
        self.spread_everywhere = spread_everywhere
        self.by_domain: dict[str, int] = {}
        self.matched = 0

    def add_site(self, site: Site) -> None:
        if self.includes_site(site):
            value = site.domain(self.key)
            if value is not None:
                self.by_domain.setdefault(value, 0)

    def add(self, site: Site, pod: PodTopology) -> None:
        if not self.includes_site(site) or not self.counts_pod(pod):
            return
        self.matched += 1
        value = site.domain(self.key)
        if value is not None:
            self.by_domain[value] = self.by_domain.get(value, 0) + 1
            return
        possible = site.possible(self.key)
        if possible is None or not self.spread_everywhere:
            return
        for each in possible or (ANYWHERE,):
            self.by_domain[each] = self.by_domain.get(each, 0) + 1

    def remove(self, site: Site, pod: PodTopology) -> None:
        if not self.includes_site(site) or not self.counts_pod(pod):
            return
        self.matched -= 1
        value = site.domain(self.key)
        if value is not None:
            self.by_domain[value] -= 1
            return
        possible = site.possible(self.key)
        if possible is None or not self.spread_everywhere:
            return
        for each in possible or (ANYWHERE,):
            self.by_domain[each] -= 1

    def at(self, value: str) -> int:
        return self.by_domain.get(value, 0) + self.by_domain.get(ANYWHERE, 0)


class Topology:
    """Sites and the pods on them for one simulation."""

    def __init__(self) -> None:
        self.sites: dict[str, Site] = {}
        self.pods: dict[str, list[PodTopology]] = {}
        self._counters: dict[object, _Counter] = {}
        # Required anti-affinity of placed pods (symmetry): term -> pods per domain.
        self._owned_terms: dict[PodAffinityTerm, _Counter] = {}
        # Hard spread of pods placed by this simulation: (namespace, constraint) -> the pods
        # it selects per domain. A later pod it selects must keep it satisfied, so the plan
        # holds whatever order the scheduler binds the pods in.
        self._owned_spread: dict[tuple[str, SpreadConstraint], _Counter] = {}

    # -- building ------------------------------------------------------------------------

    def add_site(self, site: Site, pods: Iterable[PodTopology] = ()) -> None:
        self.sites[site.name] = site
        self.pods[site.name] = []
        for counter in self._counters.values():
            counter.add_site(site)
        for pod in pods:
            self.record(site.name, pod)

    def record(self, site_name: str, pod: PodTopology) -> None:
        site = self.sites[site_name]
        self.pods[site_name].append(pod)
        for counter in self._counters.values():
            counter.add(site, pod)
        for term in pod.anti_affinity:
            owned = self._owned_terms.get(term)
            if owned is None:
                owned = _Counter(
                    term.topology_key, _always, _has_key(term.topology_key), spread_everywhere=True
                )
                self._owned_terms[term] = owned
            owned.add(site, _ANY_POD)
        for constraint in pod.spread:
            key = (pod.namespace, constraint)
            if key not in self._owned_spread:
                self._owned_spread[key] = self._counter(
                    ("owned-spread", *key),
                    constraint.topology_key,
                    _in_namespace_selected(pod.namespace, constraint),
                    _has_key(constraint.topology_key),
                    spread_everywhere=False,
                )

    def decide(self, site: Site) -> None:
        """Replace a site whose undecided labels are now decided (a planned node put in a
        zone), moving its pods' counts to the decided domains."""
        old = self.sites[site.name]
        pods = self.pods[site.name]
        counters = [*self._counters.values()]
        for pod in pods:
            for counter in counters:
                counter.remove(old, pod)
            for term in pod.anti_affinity:
                self._owned_terms[term].remove(old, _ANY_POD)
        self.sites[site.name] = site
        for counter in counters:
            counter.add_site(site)
        for pod in pods:
            for counter in counters:
                counter.add(site, pod)
            for term in pod.anti_affinity:
                self._owned_terms[term].add(site, _ANY_POD)

    def owned_anti_affinity(self) -> Iterable[PodAffinityTerm]:
        return self._owned_terms.keys()

    def _counter(
        self,
        cache_key: object,
        key: str,
        counts_pod: Callable[[PodTopology], bool],
        includes_site: Callable[[Site], bool],
        *,
        spread_everywhere: bool,
    ) -> _Counter:
        counter = self._counters.get(cache_key)
        if counter is None:
            counter = _Counter(key, counts_pod, includes_site, spread_everywhere=spread_everywhere)
            for name, site in self.sites.items():
                counter.add_site(site)
                for pod in self.pods[name]:
                    counter.add(site, pod)
            self._counters[cache_key] = counter
        return counter

    # -- judging -------------------------------------------------------------------------

    def refusal(self, pod: Incoming, site: Site, potential: Mapping[str, frozenset[str]]) -> str:
        """ "" if `pod` may go to `site` by the inter-pod rules, else why not.
        `potential` gives, per topology key, domains new nodes could add for this pod."""
        topology = pod.topology
        for term in self._owned_terms:
            if not term.selects(topology.namespace, topology.labels):
                continue
            if self._conflicts(self._owned_terms[term], site):
                return (
                    "a running or planned pod's required anti-affinity on "
                    f"{term.topology_key} excludes it"
                )
        for term in topology.anti_affinity:
            counter = self._counter(
                ("anti", term),
                term.topology_key,
                _selected_by(term),
                _has_key(term.topology_key),
                spread_everywhere=True,
            )
            if self._conflicts(counter, site):
                return f"its required pod anti-affinity on {term.topology_key}"
        if topology.affinity:
            refusal = self._affinity_refusal(topology, site)
            if refusal:
                return refusal
        for constraint in topology.spread:
            refusal = self._spread_refusal(pod, constraint, site, potential)
            if refusal:
                return refusal
        for (namespace, constraint), counter in self._owned_spread.items():
            if namespace != topology.namespace or not constraint.selects(topology.labels):
                continue
            value = site.domain(constraint.topology_key)
            if value is None:
                continue
            refusal = _skew_refusal(counter, constraint, value, potential, in_domains=True, own=1)
            if refusal:
                return "a planned pod's " + refusal
        return ""

    def excludes_for_good(self, pod: Incoming, site: Site) -> bool:
        """Whether a hostname-keyed required anti-affinity (the pod's or a placed pod's)
        refuses the pod at `site`: such counts only grow within a simulation, so the
        refusal lasts; other refusals may lift as pods are placed or zones decided."""
        topology = pod.topology
        for term, counter in self._owned_terms.items():
            if (
                term.topology_key == keys.HOSTNAME
                and term.selects(topology.namespace, topology.labels)
                and self._conflicts(counter, site)
            ):
                return True
        for term in topology.anti_affinity:
            if term.topology_key != keys.HOSTNAME:
                continue
            anti = self._counters.get(("anti", term))
            if anti is not None and self._conflicts(anti, site):
                return True
        return False

    @staticmethod
    def _conflicts(counter: _Counter, site: Site) -> bool:
        value = site.domain(counter.key)
        if value is not None:
            return counter.at(value) > 0
        possible = site.possible(counter.key)
        if possible is None:
            return False  # a node without the key satisfies the term
        if not possible:
            return any(counter.by_domain.values())
        return any(counter.at(each) > 0 for each in possible)

    def _affinity_refusal(self, topology: PodTopology, site: Site) -> str:
        terms = topology.affinity
        counters = [
            self._counter(
                ("affinity", terms, index),
                term.topology_key,
                _selected_by_all(terms),
                _has_key(term.topology_key),
                spread_everywhere=False,
            )
            for index, term in enumerate(terms)
        ]
        # The first pod of a group that selects itself may go anywhere the keys exist.
        first = counters[0].matched == 0 and all(
            t.selects(topology.namespace, topology.labels) for t in terms
        )
        for term, counter in zip(terms, counters, strict=True):
            value = site.domain(term.topology_key)
            if value is None:
                return f"its required pod affinity needs a node labelled {term.topology_key}"
            if not first and counter.at(value) <= 0:
                return f"its required pod affinity on {term.topology_key}"
        return ""

    def _spread_refusal(
        self,
        pod: Incoming,
        constraint: SpreadConstraint,
        site: Site,
        potential: Mapping[str, frozenset[str]],
    ) -> str:
        topology = pod.topology
        key = constraint.topology_key
        value = site.domain(key)
        if value is None:
            return f"its topology spread on {key} needs a node labelled {key}"
        spread_keys = tuple(sorted({c.topology_key for c in topology.spread}))
        affinity = pod.node_affinity if constraint.honor_node_affinity else None
        tolerations = pod.tolerations if constraint.honor_taints else None
        namespace = topology.namespace
        tolerations_key = (
            None
            if tolerations is None
            else tuple(tuple(sorted((str(k), str(v)) for k, v in t.items())) for t in tolerations)
        )

        def includes(candidate: Site) -> bool:
            if any(candidate.domain(k) is None for k in spread_keys):
                return False
            if affinity is not None and not affinity.matches(candidate.labels):
                return False
            return tolerations is None or _tolerated(candidate, tolerations)

        counter = self._counter(
            ("spread", namespace, constraint, spread_keys, affinity, tolerations_key),
            key,
            _in_namespace_selected(namespace, constraint),
            includes,
            spread_everywhere=False,
        )
        own = 1 if constraint.selects(topology.labels) else 0
        refusal = _skew_refusal(
            counter, constraint, value, potential, in_domains=includes(site), own=own
        )
        return "its " + refusal if refusal else ""

    def spread_load(self, pod: Incoming, site: Site) -> int:
        """Matching pods already in the site's domains, over the pod's spread constraints
        (to put a new node in the least loaded zone)."""
        load = 0
        namespace = pod.topology.namespace
        for constraint in pod.topology.spread:
            value = site.domain(constraint.topology_key)
            if value is None:
                continue
            counter = self._counter(
                ("owned-spread", namespace, constraint),
                constraint.topology_key,
                _in_namespace_selected(namespace, constraint),
                _has_key(constraint.topology_key),
                spread_everywhere=False,
            )
            load += counter.at(value)
        return load


_ANY_POD = PodTopology()


def _skew_refusal(
    counter: _Counter,
    constraint: SpreadConstraint,
    value: str,
    potential: Mapping[str, frozenset[str]],
    *,
    in_domains: bool,
    own: int,
) -> str:
    """PodTopologySpread's filter for one constraint at domain `value`: the domains are
    the counted ones, those new nodes could add and (`in_domains`) the candidate's own;
    the minimum is 0 for hostname (a new node is always a new, empty domain) and when
    there are fewer domains than minDomains."""
    key = constraint.topology_key
    domains = dict(counter.by_domain)
    for each in potential.get(key, ()):
        domains.setdefault(each, 0)
    if in_domains:
        domains.setdefault(value, 0)
    if key == keys.HOSTNAME or len(domains) < constraint.min_domains:
        lowest = 0
    else:
        lowest = min(domains.values(), default=0)
    skew = domains.get(value, 0) + own - lowest
    if skew <= constraint.max_skew:
        return ""
    return (
        f"topology spread on {key} (maxSkew {constraint.max_skew}"
        + (f", minDomains {constraint.min_domains}" if constraint.min_domains > 1 else "")
        + f"): {value!r} would have skew {skew}"
    )


def _always(_: PodTopology) -> bool:
    return True


def _has_key(key: str) -> Callable[[Site], bool]:
    def includes(site: Site) -> bool:
        return site.domain(key) is not None or site.possible(key) is not None

    return includes


def _selected_by(term: PodAffinityTerm) -> Callable[[PodTopology], bool]:
    return lambda placed: term.selects(placed.namespace, placed.labels)


def _selected_by_all(terms: tuple[PodAffinityTerm, ...]) -> Callable[[PodTopology], bool]:
    return lambda placed: all(t.selects(placed.namespace, placed.labels) for t in terms)


def _in_namespace_selected(
    namespace: str, constraint: SpreadConstraint
) -> Callable[[PodTopology], bool]:
    return lambda placed: placed.namespace == namespace and constraint.selects(placed.labels)

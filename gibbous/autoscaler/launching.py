"""Deciding and launching: one decision planned (`gibbous.core.planning.scaleup`)
counting every launch in flight, its launches asked of the provider (several at once
when it takes that), each outcome recorded: accepted, throttled (retried with the same
token), stock-out or quota (the pair backed off and the next candidate planned and
launched at once, in the same step, at most `MAX_FALLBACKS` times in a row), a
misconfigured provider (launches paused), repeated unknown errors (abandoned).

A fallback re-plans rather than carrying alternatives: the failed launch is out of the
books (never accepted, or its throttled record dropped), its pair is backed off, and the one
planner plans the decision's pods again, so the pods it held, and those counted on its room
since, go to the cheapest offering left under the same constraints, possibly onto launches
of the same decision that succeeded."""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from gibbous.autoscaler.cloud.base import (
    FatalConfigurationError,
    Instance,
    InstanceNotFoundError,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.loopstate import LoopState
from gibbous.core import keys
from gibbous.core.errors import GibbousError, quoted
from gibbous.core.lifecycle.launches import Launch, LaunchState, Termination
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import Guardrails, PendingPod
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import (
    InFlight,
    existing_nodes,
    gibbous_usage,
    plan_scale_up,
)
from gibbous.core.podmodel.pods import Pod, key_of, scheduling_gates
from gibbous.core.podmodel.resources import Resources

log = logging.getLogger("gibbous.autoscaler")

# A decision replans and launches at once after a stock-out or quota error; a launch is
# followed by at most this many fallbacks in one step (1 + 7 create calls, in the order of
# price), so a region-wide stock-out costs a bounded burst of calls and the pods are planned
# again at the next decision (scaleUpBatchMax later), as after any failed launch.
MAX_FALLBACKS = 7
_FALLBACK_KINDS = frozenset({FailureKind.INSUFFICIENT_CAPACITY, FailureKind.QUOTA})
# How a pod's decision names the launch in flight it was counted on.
_ON_IN_FLIGHT = "room on the launch in flight "
# A launch failing this many times with errors of no known kind is abandoned.
MAX_LAUNCH_ATTEMPTS = 5


class Launching(LoopState):
    def _decide(
        self,
        provision: list[tuple[PendingPod, Pod]],
        nodes: Sequence[Mapping[str, Any]],
        now: float,
        *,
        leaving: frozenset[str] = frozenset(),
    ) -> None:
        if not provision:
            return
        self.decisions += 1
        self.metrics.decisions.inc()
        pending = [p for p, _ in provision]
        pod_by_key = {p.key: pod for p, pod in provision}
        asked: list[Launch] = []
        for fallbacks in range(MAX_FALLBACKS + 1):
            flying = self._in_flight_with_bound_pods()
            flying_nodes = frozenset(
                launch.node_name for launch in self.launches.values() if launch.node_name
            )
            usage = gibbous_usage(
                nodes, flying, self.config, exclude=flying_nodes, view_of=self.views.view
            )
            plan = plan_scale_up(
                pending,
                self.offers,
                self.config,
                existing=existing_nodes(
                    nodes,
                    (),
                    self.offers_by_key,
                    self.config,
                    exclude=flying_nodes | leaving,
                    view_of=self.views.view,
                    bound=self.pods_index,
                ),
                in_flight=flying,
                backoffs=self.backoffs,
                guardrails=Guardrails.from_config(
                    self.config, gpus=usage.gpus, nodes=usage.nodes, cost=usage.cost_per_hour
                ),
                now=now,
            )
            unsatisfiable = dict(plan.unsatisfiable)
            launches = [
                Launch(token=self.new_token(), plan=launch_plan, requested_at=now)
                for launch_plan in plan.launches
            ]
            asked.extend(launches)
            outcomes = self._create_all(launches, now, last=fallbacks == MAX_FALLBACKS)
            if not _FALLBACK_KINDS.intersection(o for o in outcomes if o) or (
                now < self.paused_until
            ):
                break
        for launch, outcome in zip(launches, outcomes, strict=True):
            wrong = launch.plan.wrong_size
            detail = (
                f"a new {launch.plan.offer.describe()} ({launch.token})"
                + (f"; {wrong.describe()}" if wrong else "")
                if outcome is None or launch.token in self.launches
                else f"{launch.plan.offer.describe()} failed ({outcome}); "
                "planned again at the next decision"
            )
            for key in launch.plan.pods:
                self._record_decision(pod_by_key[key], "launch", detail)
        self._say_wrong_sizes(asked, pod_by_key)
        for key, node_name in plan.on_existing.items():
            pod = pod_by_key[key]
            self._record_decision(
                pod,
                "existing-node",
                _ON_IN_FLIGHT + node_name.removeprefix("in-flight:")
                if node_name.startswith("in-flight:")
                else f"room on the existing node {node_name}",
            )
            if not node_name.startswith("in-flight:") and keys.PROVISIONING_GATE in (
                scheduling_gates(pod)
            ):
                self._release(pod, None)
        for key, reason in unsatisfiable.items():
            self._record_decision(pod_by_key[key], "unsatisfiable", reason)
            self._warn(pod_by_key[key], f"cannot obtain a node for this pod: {reason}")

    def _in_flight_with_bound_pods(self) -> list[InFlight]:
        """The launches in flight, each less what the scheduler already bound to its Node
        (registered, not yet Ready: pods that tolerate the not-ready taint), so its room is
        not promised twice."""
        flying = []
        for launch in self.launches.values():
            seen = launch.in_flight()
            if launch.node_name and launch.node_name in self.pods_index.on_node:
                used = Resources()
                for facts in self.pods_index.node_pods(launch.node_name):
                    used = used + (facts.requests or Resources())
                seen = replace(
                    seen, bound=used, bound_pods=self.pods_index.placed(launch.node_name)
                )
            flying.append(seen)
        return flying

    def _say_wrong_sizes(self, asked: list[Launch], pod_by_key: Mapping[str, Pod]) -> None:
        """A Warning on the pods of each launch the provider took (or is retrying) whose
        type is far larger than they ask (`gibbous.core.choice.wrongsize`)."""
        for launch in asked:
            wrong = launch.plan.wrong_size
            if wrong is None or launch.token not in self.launches:
                continue
            message = (
                f"{wrong.describe()}; launching it as the cheapest type that fits "
                f"({launch.plan.offer.describe()}): the catalog may lack a smaller fitting shape"
            )
            log.warning("launch %s: %s", launch.token, message)
            for key in launch.plan.pods:
                if key in pod_by_key:
                    self._warn(pod_by_key[key], message, reason=keys.EVENT_WRONG_SIZE_NODE)

    def provision_displaced(self, pods: Sequence[Pod], leaving: frozenset[str]) -> None:
        """Plan capacity at once for pods on nodes about to disappear (spot interruption),
        before they are evicted: their replacement starts launching with the warning, and
        the recreated pods find it in flight."""
        now = self.clock()
        displaced = []
        for pod in pods:
            try:
                displaced.append((describe_pod(pod, self.config)[0], pod))
            except GibbousError:
                continue
        if displaced and now >= self.paused_until:
            self._decide(displaced, self.cluster.nodes(), now, leaving=leaving)

    def _create_all(
        self, launches: list[Launch], now: float, *, last: bool = False
    ) -> list[FailureKind | None]:
        """Ask the provider for the launches' instances, several at once when it takes that
        (`launch_concurrency`: a burst of 60 nodes must not wait on 60 calls in a row), and
        record the outcomes in order, on this thread. `last`: a stock-out now ends the
        chain of fallbacks (said so on the pods)."""
        width = min(len(launches), max(1, self.provider.launch_concurrency))
        if width <= 1:
            outcomes = [self._call_create(launch) for launch in launches]
        else:
            with concurrent.futures.ThreadPoolExecutor(width) as pool:
                outcomes = list(pool.map(self._call_create, launches))
        return [
            self._record_create(launch, outcome, now, last=last)
            for launch, outcome in zip(launches, outcomes, strict=True)
        ]

    def _create(self, launch: Launch, now: float) -> FailureKind | None:
        return self._create_all([launch], now)[0]

    def _call_create(self, launch: Launch) -> Instance | Exception:
        plan = launch.plan
        request = LaunchRequest(
            token=launch.token,
            cluster_id=self.config.cluster_id,
            instance_type=plan.offer.name,
            category=str(plan.offer.category),
            zones=plan.zones,
            labels=plan.labels,
            taints=plan.taints,
            disk_gib=plan.disk_gib,
        )
        try:
            return self.provider.create(request)
        except Exception as error:
            return error

    def _record_create(
        self, launch: Launch, outcome: Instance | Exception, now: float, *, last: bool = False
    ) -> FailureKind | None:
        """Record a create call's outcome. Returns the kind of failure that backs a pair
        off, if any."""
        offer = launch.plan.offer
        attempts = launch.attempts + 1
        try:
            if isinstance(outcome, Exception):
                raise outcome
            instance = outcome
        except (InsufficientCapacityError, QuotaExceededError) as error:
            kind = (
                FailureKind.QUOTA
                if isinstance(error, QuotaExceededError)
                else FailureKind.INSUFFICIENT_CAPACITY
            )
            zone = error.zone if isinstance(error, InsufficientCapacityError) else ""
            zone = zone if "," not in zone else ""
            self._back_off(offer.name, str(offer.category), zone, kind, now)
            # A throttled launch retried into a stock-out: its room stops counting, so the
            # pods counted on it are planned again with the decision this step makes.
            self.launches.pop(launch.token, None)
            self._say_failed_attempt(launch, kind, error, last=last)
            return kind
        except ThrottledError as error:
            delay = error.retry_after_s * (1.0 + self.jitter())
            self.launches[launch.token] = replace(
                launch, state=LaunchState.REQUESTED, retry_at=now + delay, attempts=attempts
            )
            self.metrics.failures.labels("throttled").inc()
            log.info("launch %s throttled; retrying in %.1fs", launch.token, delay)
            return None
        except FatalConfigurationError as error:
            self.paused_until = now + self.config.backoff_s
            self.paused_reason = str(error)
            self.launches.pop(launch.token, None)
            self.metrics.failures.labels("fatal-configuration").inc()
            log.error(
                "the %s provider is misconfigured (%s); launches paused for %.0fs",
                self.provider.name,
                error,
                self.config.backoff_s,
            )
            return None
        except Exception as error:
            self.metrics.failures.labels("error").inc()
            if attempts >= MAX_LAUNCH_ATTEMPTS:
                return self._abandon(launch, error, now)
            delay = min(60.0, 2.0**attempts) * (1.0 + self.jitter())
            self.launches[launch.token] = replace(
                launch, state=LaunchState.REQUESTED, retry_at=now + delay, attempts=attempts
            )
            log.warning(
                "launch %s failed (%s: %s); attempt %d of %d, retrying in %.1fs",
                launch.token,
                type(error).__name__,
                error,
                attempts,
                MAX_LAUNCH_ATTEMPTS,
                delay,
            )
            return None
        self.launches[launch.token] = replace(
            launch,
            state=LaunchState.ACCEPTED,
            instance_id=instance.id,
            zone=instance.zone,
            node_name=instance.node_name,
            attempts=attempts,
        )
        self.metrics.launches.labels(offer.name, str(offer.category)).inc()
        log.info(
            "launched %s as %s in %s for %d pod(s)",
            offer.describe(),
            instance.id,
            instance.zone or "any zone",
            len(launch.plan.pods),
        )
        return None

    def _say_failed_attempt(
        self, launch: Launch, kind: FailureKind, error: Exception, *, last: bool
    ) -> None:
        """One log line and one `GibbousTryingNextCandidate` Warning per failed attempt, on
        the pods the launch was for and those counted on its room since."""
        then = (
            f"{MAX_FALLBACKS} fallbacks failed in a row; planned again at the next decision"
            if last
            else "launching the next candidate now"
        )
        message = (
            f"launch of {launch.plan.offer.describe()} failed ({kind}: "
            f"{quoted(str(error))}); {then}"
        )
        log.warning("launch %s: %s", launch.token, message)
        counted = set(launch.plan.pods)
        on_it = _ON_IN_FLIGHT + launch.token
        counted.update(d.key for d in self.decided.values() if d.detail == on_it)
        for key in sorted(counted):
            facts = self.pods_index.facts.get(key)
            if facts is not None and not facts.node:
                self._warn(facts.pod, message, reason=keys.EVENT_TRYING_NEXT_CANDIDATE)

    def _abandon(self, launch: Launch, error: Exception, now: float) -> FailureKind:
        """A launch the provider kept failing with errors Gibbous has no kind for (a bug, an
        unexpected API answer): given up, its pair backed off so the next candidate is
        tried, and said on its pods."""
        offer = launch.plan.offer
        self.launches.pop(launch.token, None)
        self.metrics.failures.labels("abandoned-after-errors").inc()
        self._back_off(offer.name, str(offer.category), "", FailureKind.PROVIDER_ERROR, now)
        message = (
            f"launching {offer.describe()} failed {MAX_LAUNCH_ATTEMPTS} times "
            f"({type(error).__name__}: {quoted(str(error))}); Gibbous tries the next candidate"
        )
        log.error("launch %s abandoned: %s", launch.token, message)
        by_key = {
            key_of(pod): pod for pod in self.cluster.pods() if key_of(pod) in launch.plan.pods
        }
        for pod in by_key.values():
            self._warn(pod, message, reason=keys.EVENT_LAUNCH_ABANDONED)
        self.replan = True
        return FailureKind.PROVIDER_ERROR

    def _back_off(
        self, instance_type: str, category: str, zone: str, kind: FailureKind, now: float
    ) -> None:
        self.backoffs = self.backoffs.add(
            instance_type=instance_type,
            category=category,
            zone=zone,
            kind=kind,
            now=now,
            duration_s=self.config.backoff_s,
        )
        self.metrics.failures.labels(str(kind)).inc()
        self.replan = True

    def _terminate(self, termination: Termination, now: float, bound: ClusterPods) -> None:
        log.warning("terminating %s: %s", termination.instance_id, termination.reason)
        try:
            if termination.instance_id:
                self.provider.delete(termination.instance_id)
        except InstanceNotFoundError:
            pass
        except Exception as error:
            log.warning("terminating %s failed (%s); will retry", termination.instance_id, error)
        kind = termination.backoff[3] if termination.backoff else "orphan"
        self.metrics.terminations.labels(str(kind)).inc()
        if termination.backoff is not None:
            instance_type, category, zone, failure = termination.backoff
            self._back_off(instance_type, category, zone, failure, now)
        if termination.launch is not None:
            for key in termination.launch.plan.pods:
                facts = bound.facts.get(key)
                if facts is not None:
                    self._warn(
                        facts.pod,
                        f"launch abandoned: {termination.reason}; trying the next candidate",
                        reason=keys.EVENT_TRYING_NEXT_CANDIDATE,
                    )

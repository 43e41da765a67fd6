"""Which install owns a node or an instance.

Several Gibbous installs may share a cluster (one per team, each with its own `labels`).
`node.elotl.co/created-by=gibbous` stays as Luna's tooling and Nova expect it, so it says
only that *some* install made the node; `gibbous.dev/owner` says which one: the
configuration's `clusterID`, plus `installName` when set (the chart passes its release).
An install reviews, drains, expires and cycles only nodes it owns, and adopts or collects
only instances it owns.

A node or instance from before owner labels existed (created-by=gibbous, no owner label)
counts as owned by every install: a single install upgraded in place keeps managing the
nodes it made (docs/decisions.md, issue #28).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping

from gibbous.core import keys
from gibbous.core.settings.config import Config

_LABEL_VALUE_LIMIT = 63
_NOT_IN_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")
_HASH_DIGITS = 12


def install_owner(config: Config) -> str:
    """The value of `gibbous.dev/owner` on nodes this install creates."""
    return _owner(config.cluster_id, config.install_name)


@functools.lru_cache(maxsize=8)
def _owner(cluster_id: str, install_name: str) -> str:
    name = install_name.strip()
    identity = f"{cluster_id}.{name}" if name else cluster_id
    value = _NOT_IN_LABEL_VALUE.sub("-", identity).strip("-_.")
    if len(value) <= _LABEL_VALUE_LIMIT:
        return value
    # Two long names sharing their first 50 characters must still differ.
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_HASH_DIGITS]
    head = value[: _LABEL_VALUE_LIMIT - _HASH_DIGITS - 1].rstrip("-_.")
    return f"{head}-{digest}"


def owned(labels: Mapping[str, str], owner: str) -> bool:
    """Whether a node (or a launched instance) with `labels` is this install's to manage."""
    if labels.get(keys.CREATED_BY) != keys.CREATED_BY_VALUE:
        return False
    return labels.get(keys.OWNER, owner) == owner


def owned_instance(labels: Mapping[str, str], owner: str) -> bool:
    """Instances are listed by clusterID already; only an owner label naming another
    install rules one out (providers that report no labels keep today's behaviour)."""
    return labels.get(keys.OWNER, owner) == owner

"""The providers `gibbous autoscaler --provider` knows, by name, in the order its help lists
them. A new cloud is one line here (and its own modules: see the package's docstring)."""

from __future__ import annotations

from gibbous.autoscaler.providers import aks, aws, gke, kwok, oke
from gibbous.autoscaler.providers.spec import ProviderSpec

PROVIDERS: tuple[ProviderSpec, ...] = (
    kwok.PROVIDER,
    aws.PROVIDER,
    gke.PROVIDER,
    aks.PROVIDER,
    oke.PROVIDER,
)


def provider_names() -> tuple[str, ...]:
    return tuple(p.name for p in PROVIDERS)


def provider(name: str) -> ProviderSpec:
    """The provider named `name` (one of `provider_names()`)."""
    for spec in PROVIDERS:
        if spec.name == name:
            return spec
    raise KeyError(f"no provider {name!r}; known: {', '.join(provider_names())}")

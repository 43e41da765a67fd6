"""The provider registry: `--provider` offers exactly its providers, each started by its own
module, and a missing SDK or a provider on the wrong cloud stops the start with a named error."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from gibbous.autoscaler.providers.registry import PROVIDERS, provider, provider_names
from gibbous.cli import build_parser
from gibbous.commands.reference import subcommands
from gibbous.core.errors import ConfigError
from gibbous.core.settings.loader import build_config


def autoscaler_args(name: str) -> Any:
    return build_parser().parse_args(["autoscaler", "--provider", name])


def test_the_registry_is_what_autoscaler_offers() -> None:
    assert provider_names() == ("kwok", "aws", "gcp", "azure", "oci")
    assert len(set(provider_names())) == len(PROVIDERS)
    autoscaler = dict(subcommands(build_parser()))["autoscaler"]
    (action,) = (a for a in autoscaler._actions if a.dest == "provider")
    assert action.choices is not None
    assert tuple(action.choices) == provider_names()
    description = autoscaler.description or ""
    for spec in PROVIDERS:
        assert f"{spec.name} ({spec.summary})" in description
        assert provider(spec.name) is spec
        # Each provider starts from its own module, beside the registry.
        assert spec.build.__module__.startswith("gibbous.autoscaler.providers.")


def test_an_unknown_name_is_named() -> None:
    with pytest.raises(KeyError, match="no provider 'nope'; known: kwok, aws, gcp, azure, oci"):
        provider("nope")


@pytest.mark.parametrize(
    ("name", "missing", "message"),
    [
        (
            "aws",
            "boto3",
            "--provider aws needs boto3: pip install -e '.[aws]' in a checkout of Gibbous",
        ),
        ("gcp", "gibbous.autoscaler.cloud.gke", "pip install -e '.[gcp]' in a checkout of Gibbous"),
        (
            "azure",
            "gibbous.autoscaler.cloud.aks",
            "pip install -e '.[azure]' in a checkout of Gibbous",
        ),
        (
            "oci",
            "oci",
            "--provider oci needs the oci SDK: pip install -e '.[oci]' in a checkout of Gibbous",
        ),
    ],
)
def test_a_missing_sdk_is_named(
    name: str, missing: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # `import` of it raises ImportError
    config = build_config({"cloudProvider": "aws" if name == "aws" else name})
    with pytest.raises(ConfigError) as raised:
        provider(name).build(autoscaler_args(name), config, [], None)
    assert message in str(raised.value)


@pytest.mark.parametrize("name", ["gcp", "azure", "oci"])
def test_a_provider_runs_on_its_own_cloud(name: str) -> None:
    with pytest.raises(
        ConfigError, match=f"--provider {name} needs cloudProvider {name} \\(it is aws\\)"
    ):
        provider(name).build(autoscaler_args(name), build_config({}), [], None)

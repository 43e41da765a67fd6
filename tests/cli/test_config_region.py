"""`gibbous config --check` says which region the autoscaler will use and where it came
from, and warns when Gibbous has no catalog for it (before: "valid", then a refusal at
start). P07's Luna values carry AWS_REGION in the manager's secret, not in the values."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gibbous.autoscaler.cloud.aks import discover
from gibbous.catalogs import load_catalog
from gibbous.cli import main
from gibbous.core.settings.loader import build_config
from tests.factories import catalog


def check(path: Path) -> str:
    out = io.StringIO()
    assert main(["config", "--check", str(path)], stdout=out) == 0
    return out.getvalue()


def test_aws_region_from_the_environment_is_named_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    path = tmp_path / "values.yaml"
    path.write_text("cloudProvider: aws\naws:\n  useSpotAdvisor: true\n")
    out = check(path)
    assert "region: eu-west-1 (from AWS_REGION)" in out
    # Built in since the catalogs cover every public region (issue 30): libcloud's eu-west-1
    # prices (2025-03-02) and those derived from karpenter-provider-aws's (2026-07-20).
    assert "no types" not in out and "warning" not in out
    assert "types in eu-west-1 (prices of 2025-03-02 to 2026-07-20)" in out


def test_a_region_without_built_in_data_says_the_catalog_comes_from_the_apis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ap-east-2 (Taipei) is in botocore's region list but in no offline price list yet.
    monkeypatch.setenv("AWS_REGION", "ap-east-2")
    path = tmp_path / "values.yaml"
    path.write_text("cloudProvider: aws\naws:\n  useSpotAdvisor: true\n")
    out = check(path)
    assert "region: ap-east-2 (from AWS_REGION)" in out
    assert "built-in aws catalog has no types for ap-east-2" in out
    assert "builds its catalog from AWS's APIs" in out
    assert "pricing:GetProducts" in out
    assert "--catalog FILE" in out


def test_the_region_option_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    path = tmp_path / "values.yaml"
    path.write_text("cloudProvider: aws\nregion: us-west-2\n")
    out = check(path)
    assert "region: us-west-2 (from the region option)" in out
    assert "warning" not in out


def test_a_zonal_gke_clusters_region_is_its_zones(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("cloudProvider: gcp\ngcp:\n  location: us-central1-f\n")
    assert "region: us-central1 (from gcp.location (us-central1-f))" in check(path)


def test_an_aks_cluster_elsewhere_gets_its_locations_catalog() -> None:
    """With no region configured, the managed cluster's `location` (ARM's ManagedCluster
    resource) names the catalog, not the default region's."""
    cluster = SimpleNamespace(
        location="westeurope",
        properties=SimpleNamespace(agent_pool_profiles=[], network_profile=None),
    )
    client: Any = SimpleNamespace(managed_clusters=SimpleNamespace(get=lambda group, name: cluster))
    asked: list[str] = []
    westeurope = list(catalog("azure"))[:3]

    def catalog_for(location: str) -> list[Any]:
        asked.append(location)
        return westeurope

    config = build_config({"cloudProvider": "azure", "azure": {"resourceGroup": "rg"}})
    provider = discover(
        client=client,
        config=config.azure,
        cluster_id="prod",
        region="eastus",
        catalog=catalog("azure"),
        clock=lambda: 0.0,
        empty_pool_s=600,
        catalog_for_location=catalog_for,
    )
    assert asked == ["westeurope"]
    assert {t.name for t in provider.instance_types()} == {t.name for t in westeurope}


def test_an_azure_region_without_built_in_data_says_the_catalog_comes_from_the_apis(
    tmp_path: Path,
) -> None:
    # belgiumcentral opened after the Retail Prices table the built-in data was made from.
    path = tmp_path / "values.yaml"
    path.write_text("cloudProvider: azure\nregion: belgiumcentral\n")
    out = check(path)
    assert "built-in azure catalog has no types for belgiumcentral" in out
    assert "Azure's APIs" in out and "--catalog FILE" in out
    assert "warning" not in out


def test_every_public_aws_and_azure_region_checks_without_a_note(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    for cloud, region in (("aws", "eu-west-1"), ("azure", "westeurope")):
        path.write_text(f"cloudProvider: {cloud}\nregion: {region}\n")
        out = check(path)
        assert f"region: {region} (from the region option)" in out
        assert "no types" not in out and "warning" not in out
        # The same call the autoscaler makes at start, and its answer.
        assert f"built-in catalog: {len(load_catalog(None, cloud, region))} {cloud} types" in out

"""Which region Gibbous uses when the region option is empty: the cloud's own conventions.

AWS: the SDKs read AWS_REGION, and boto3 and the CLI AWS_DEFAULT_REGION (AWS SDKs and Tools
reference guide, "AWS Region"); Luna's P07 puts AWS_REGION in the manager's secret.
GCP: a zone's name is its region's name and a letter (Compute Engine, "Regions and zones")."""

from __future__ import annotations

import pytest

from gibbous.core.settings.region import choose_region


@pytest.mark.parametrize(
    "case",
    [
        ("aws", "", "", {"AWS_REGION": "eu-west-1"}, "eu-west-1", "AWS_REGION"),
        ("aws", "", "", {"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1", "AWS_DEFAULT_REGION"),
        (
            "aws",
            "",
            "",
            {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"},
            "eu-west-1",
            "AWS_REGION",
        ),
        ("aws", "us-east-1", "", {"AWS_REGION": "eu-west-1"}, "us-east-1", "the region option"),
        ("aws", "", "", {"AWS_REGION": "  "}, "us-west-2", "the default for aws"),
        ("gcp", "", "europe-west4-b", {}, "europe-west4", "gcp.location (europe-west4-b)"),
        ("gcp", "", "asia-northeast1", {}, "asia-northeast1", "gcp.location"),
        ("gcp", "", "", {"AWS_REGION": "eu-west-1"}, "us-central1", "the default for gcp"),
        ("azure", "", "", {"AWS_REGION": "eu-west-1"}, "eastus", "the default for azure"),
        ("oci", "", "", {}, "us-ashburn-1", "the default for oci"),
    ],
)
def test_the_region_and_where_it_came_from(
    case: tuple[str, str, str, dict[str, str], str, str],
) -> None:
    cloud, option, location, environment, region, source = case
    choice = choose_region(cloud, option, location, environment)
    assert (choice.region, choice.source) == (region, source)
    assert choice.default == source.startswith("the default")

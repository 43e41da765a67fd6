"""Which region the catalog and the cloud clients are for, and where that came from.

The region option wins. Without it, each cloud's own convention for the place a program
runs in (the SDKs read these, so a Luna install whose `manager.envFrom` secret carries
`AWS_REGION`, P07, keeps working):

* AWS: `AWS_REGION`, then `AWS_DEFAULT_REGION` (the AWS SDKs and Tools reference guide,
  "AWS Region": `AWS_REGION` is the SDKs' variable; the CLI's older `AWS_DEFAULT_REGION`
  is read when it is absent, as boto3 does).
* GCP: the cluster's location (`gcp.location`): a region as it is, a zone's region for a
  zonal cluster (`us-central1-a` is in `us-central1`; Compute Engine's "Regions and
  zones": a zone's name is its region's and a letter).
* Azure and OCI: the cluster's own location, read by the provider at start (the AKS
  managed cluster's `location`; the OCI signer's region) - see the providers.

Then the cloud's default region, the one the built-in catalog was first written for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gibbous.core.settings.options.core import DEFAULT_REGIONS

_GCP_ZONE = re.compile(r"([a-z]+-[a-z]+[0-9]+)-[a-z]")
AWS_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class RegionChoice:
    region: str
    source: str  # for people: "the region option", "AWS_REGION", ...
    default: bool  # nothing named it: the cloud's default


def choose_region(
    cloud: str, region_option: str, gcp_location: str, environment: Mapping[str, str]
) -> RegionChoice:
    if region_option:
        return RegionChoice(region_option, "the region option", False)
    if cloud == "aws":
        for variable in AWS_REGION_VARIABLES:
            value = environment.get(variable, "").strip()
            if value:
                return RegionChoice(value, variable, False)
    if cloud == "gcp" and gcp_location:
        zonal = _GCP_ZONE.fullmatch(gcp_location)
        if zonal:
            return RegionChoice(zonal.group(1), f"gcp.location ({gcp_location})", False)
        return RegionChoice(gcp_location, "gcp.location", False)
    return RegionChoice(DEFAULT_REGIONS[cloud], f"the default for {cloud}", True)

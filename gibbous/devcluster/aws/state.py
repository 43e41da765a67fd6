"""The account the EC2/EKS emulator seeds, as both the emulator and the dev cluster's
settings name it.

moto's backends hold the cloud's running state (instances, subnets, parameters), and the
node agent reads it through EC2's API, so this module keeps only what is fixed or seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACCOUNT = "123456789012"
INSTANCE_PROFILE = "gibbous-nodes"
NODE_ROLE = "eks-node"
ZONES = ("a", "b", "c")


@dataclass
class SeededCluster:
    name: str
    region: str
    version: str
    subnets: dict[str, str] = field(default_factory=dict)  # zone -> subnet id
    security_group: str = ""
    node_role_arn: str = ""
    images: dict[str, str] = field(default_factory=dict)  # SSM path -> AMI id

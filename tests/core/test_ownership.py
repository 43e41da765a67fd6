"""Issue #28: which install owns a node. Label-value rules are Kubernetes's (at most 63
characters of [A-Za-z0-9._-], starting and ending alphanumeric)."""

from __future__ import annotations

import re

import pytest

from gibbous.core import keys
from gibbous.core.choice.ownership import install_owner, owned
from tests.factories import config

LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def test_the_owner_is_the_cluster_id_then_the_install_name() -> None:
    assert install_owner(config()) == "gibbous"
    assert install_owner(config(clusterID="prod", installName="team-a")) == "prod.team-a"


@pytest.mark.parametrize(
    "install_name", ["elotl/elotl-luna", "-x-", "a" * 80, "ünïcode release", "b" * 80]
)
def test_any_install_name_gives_a_valid_distinct_label_value(install_name: str) -> None:
    value = install_owner(config(clusterID="prod", installName=install_name))
    assert len(value) <= 63 and LABEL_VALUE.fullmatch(value)
    assert value != install_owner(config(clusterID="prod"))


def test_long_names_sharing_a_prefix_stay_distinct() -> None:
    first = install_owner(config(installName="x" * 70 + "1"))
    second = install_owner(config(installName="x" * 70 + "2"))
    assert first != second


def node(**labels: str) -> dict[str, str]:
    return {keys.CREATED_BY: keys.CREATED_BY_VALUE, **labels}


def test_an_install_owns_only_nodes_with_its_owner_label() -> None:
    mine = install_owner(config(installName="a"))
    assert owned(node(**{keys.OWNER: mine}), mine)
    assert not owned(node(**{keys.OWNER: "gibbous.b"}), mine)
    assert not owned({keys.OWNER: mine}, mine)  # not created by Gibbous at all
    assert not owned({keys.CREATED_BY: "luna"}, mine)


def test_nodes_from_before_owner_labels_stay_managed() -> None:
    # A single install upgraded in place must keep scaling down and cycling its old nodes.
    assert owned(node(), install_owner(config(installName="a")))

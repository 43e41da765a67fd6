"""Settings rules the mutation run of issue 37 (docs/mutation.md) showed no test held.

Expected values come from outside the code: EKS's bootstrap.sh and Bottlerocket's settings
reference, cloud-init's user-data formats, TOML's grammar, and the messages the options
reference promises, written out here by hand."""

from __future__ import annotations

import email
import email.policy
import shlex
import tomllib

import pytest

from gibbous.core.errors import ConfigError
from gibbous.core.settings.options.aws import aws_ids
from gibbous.core.settings.userdata import (
    ClusterInfo,
    NodeBootstrap,
    UserDataType,
    render_user_data,
)
from gibbous.core.settings.valuetypes import choice, number, parse_string_list, whole_number
from tests.factories import config

CLUSTER = ClusterInfo("prod", "https://api.example", "Y2VydA==")
NODE = NodeBootstrap({"team": "ml"}, ({"key": "dedicated", "effect": "NoSchedule"},), 29)


def parts(text: str) -> list[tuple[str, str]]:
    message = email.message_from_string(text, policy=email.policy.default)
    return [(p.get_content_type(), str(p.get_payload())) for p in message.iter_parts()]


def problems(**values: object) -> str:
    with pytest.raises(ConfigError) as raised:
        config(**values)
    return str(raised.value)


def test_hot_node_thresholds_must_rise_from_green_to_red() -> None:
    cpu = {f"manageHighUtilization.{k}CPU": v for k, v in (("green", 90), ("yellow", 50))}
    text = problems(**cpu, **{"manageHighUtilization.redCPU": 95})
    assert text.removeprefix("invalid configuration: ").split("; ") == [
        "manageHighUtilization: need greenCPU <= yellowCPU <= redCPU"
    ]


def test_labels_error_shows_lunas_example() -> None:
    text = problems(labels="no-value")
    assert text.endswith("e.g. elotl-luna=true)")


def test_pattern_errors_name_the_option_and_what_yaml_made() -> None:
    assert "binPackingNodeTypeRegexp: expected text, got a list" in problems(
        binPackingNodeTypeRegexp=[1]
    )
    assert "labels[0]: expected a string, got a number (quote it" in problems(labels=[7])


def test_choice_errors_list_the_choices() -> None:
    # GCE boot disk types accepted for GKE nodes, comma separated
    assert "(accepted: pd-balanced, pd-standard, pd-ssd, hyperdisk-balanced)" in problems(
        **{"gcp.diskType": "floppy"}
    )
    # the value types are built when the options table is: built here again, at test time
    disk = choice(("pd-balanced", "pd-ssd"))
    assert disk.parse(" PD-SSD ", "k") == "pd-ssd" and disk.render("pd-ssd") == "pd-ssd"
    with pytest.raises(
        ConfigError, match=r"^k: invalid value 'x' \(accepted: pd-balanced, pd-ssd\)$"
    ):
        disk.parse("x", "k")


def test_aws_ids_take_a_list_of_ids() -> None:
    subnets = aws_ids("subnet")
    assert subnets.parse("subnet-0123abcd,subnet-0123456789abcdef0", "k") == (
        "subnet-0123abcd",
        "subnet-0123456789abcdef0",
    )
    with pytest.raises(ConfigError, match=r"^k\[0\]: expected a string, got a number"):
        subnets.parse([7], "k")


def test_string_lists_as_helm_and_json_write_them() -> None:
    assert parse_string_list("{a,b}", "k") == ("a", "b")  # helm --set
    assert parse_string_list('["a", "b"]', "k") == ("a", "b")  # JSON
    assert parse_string_list("['a', 'b']", "k") == ("a", "b")  # single quotes
    assert parse_string_list("'MAX', 'BOX'", "k") == ("MAX", "BOX")  # only quotes go


def test_unset_limits_read_as_no_limit() -> None:
    for unset in (None, "", "null", " none "):
        assert config(maxNodes=unset).max_nodes is None
    assert config(maxNodes="3").max_nodes == 3


@pytest.mark.parametrize("bad", [True, [1], {"a": 1}])
def test_numbers_refuse_booleans_and_collections(bad: object) -> None:
    assert "maxClusterCostPerHour: " in problems(maxClusterCostPerHour=bad)
    assert "scaleDown.binPackNodeUtilizationThreshold: " in problems(
        **{"scaleDown.binPackNodeUtilizationThreshold": bad}
    )


def test_spot_advisor_needs_an_http_url_or_a_file() -> None:
    for url in ("https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json", "http://mirror/a.json"):  # fmt: skip
        config(cloudProvider="aws", **{"aws.useSpotAdvisor": True, "aws.spotAdvisorUrl": url})
    assert "aws.useSpotAdvisor needs an http(s) URL" in problems(
        cloudProvider="aws", **{"aws.useSpotAdvisor": True, "aws.spotAdvisorUrl": "ftp://x"}
    )


def test_block_device_mappings_as_run_instances_takes_them() -> None:
    # EC2 BlockDeviceMapping: DeviceName, Ebs, NoDevice, VirtualName; Ebs.VolumeType
    # defaults to gp3 when left out
    root = {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 100}}
    assert config(**{"aws.blockDeviceMappings": [root]}).aws.block_device_mappings == (root,)
    assert "aws.blockDeviceMappings[0]: unknown field 'Size'" in problems(
        **{"aws.blockDeviceMappings": [{"DeviceName": "/dev/xvda", "Size": 1}]}
    )


def test_value_type_names_state_their_bounds() -> None:
    # built here, at test time (the options table builds its own when it is imported)
    assert whole_number(0).name == "whole number >= 0"
    assert whole_number(1, 20).name == "whole number, 1 to 20"
    assert number(0.0, 1.0).name == "number, 0.0 to 1.0"
    assert number(high=5.0).name == "number <= 5.0"
    assert number().name == "number"


def test_al2_max_pods_turns_off_bootstraps_own_max_pods() -> None:
    # bootstrap.sh: --use-max-pods false, or it writes its own maxPods over --max-pods
    ((_, script),) = parts(render_user_data(UserDataType.AL2, "", CLUSTER, NODE))
    command = shlex.split(script.splitlines()[-1])
    assert command[command.index("--use-max-pods") + 1] == "false"


def test_operator_parts_keep_their_text_and_type() -> None:
    cloud_config = "#cloud-config\nruncmd:\n  - echo hi\n"
    script = "#!/bin/bash\necho hi\n"
    for operator, content_type in ((cloud_config, "text/cloud-config"), (script, "text/x-shellscript")):  # fmt: skip
        (_, (kind, payload)) = parts(render_user_data(UserDataType.AL2023, operator, CLUSTER, NODE))
        # cloud-init types a part by its first line; the text arrives byte for byte
        assert (kind, payload) == (content_type, operator)
    (_, (_, payload)) = parts(render_user_data(UserDataType.AL2023, "echo hi", CLUSTER, NODE))
    assert payload == "echo hi\n"  # a part's text ends with a newline


def test_bottlerocket_taint_without_value() -> None:
    # Bottlerocket: settings.kubernetes.node-taints.<key> = ["<value>:<effect>"]; no value: ""
    text = render_user_data(UserDataType.BOTTLEROCKET, "", CLUSTER, NODE)
    assert tomllib.loads(text)["settings"]["kubernetes"]["node-taints"] == {
        "dedicated": [":NoSchedule"]
    }


def test_bottlerocket_keeps_the_operators_empty_tables() -> None:
    operator = '[settings.host-containers.admin]\n[settings.ntp]\ntime-servers = ["a"]\n'
    settings = tomllib.loads(render_user_data(UserDataType.BOTTLEROCKET, operator, CLUSTER, NODE))
    assert settings["settings"]["host-containers"] == {"admin": {}}
    assert settings["settings"]["ntp"] == {"time-servers": ["a"]}


def test_bottlerocket_refuses_toml_dates_inside_arrays_by_name() -> None:
    operator = "[settings.motd]\nwindows = [{from = 1979-05-27T07:32:00Z}]\n"
    with pytest.raises(ConfigError, match=r"settings\.motd\.windows holds a value"):
        render_user_data(UserDataType.BOTTLEROCKET, operator, CLUSTER, NODE)


def test_bottlerocket_refuses_toml_dates_by_name() -> None:
    # a TOML offset date-time: valid TOML that the renderer cannot write back
    operator = "[settings.motd]\nsince = 1979-05-27T07:32:00Z\n"
    with pytest.raises(ConfigError) as raised:
        render_user_data(UserDataType.BOTTLEROCKET, operator, CLUSTER, NODE)
    assert str(raised.value) == (
        "Bottlerocket user data: settings.motd.since holds a value TOML output cannot take"
    )

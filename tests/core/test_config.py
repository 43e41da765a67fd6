import re

import pytest

from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config, describe_options, render_config


def test_defaults_follow_the_posts() -> None:
    config = build_config()
    assert config.bin_select_cpu_millis == 2000  # P09
    assert config.spot_price_ratio == 0.5  # P10
    assert config.scale_up_timeout_s == 600  # P10
    assert config.nvidia_gpu_time_slices == 1  # P17
    assert (config.hot_node.yellow_cpu, config.hot_node.red_cpu, config.hot_node.green_cpu) == (
        60,
        80,
        10,
    )
    assert (
        config.hot_node.yellow_memory,
        config.hot_node.red_memory,
        config.hot_node.green_memory,
    ) == (65, 85, 15)
    assert config.managed_labels == (("elotl-luna", "true"),)


def test_nested_yaml_dotted_set_and_environment() -> None:
    config = build_config(
        {"manageHighUtilization": {"enabled": True, "redCPU": 70}, "binPackingNodeMemory": "32Gi"},
        environment={"GIBBOUS_scaleDown__binPackNodeUtilizationThreshold": "0.0", "UNRELATED": "x"},
        overrides=["nodeTTL=7d", "labels=team=ml"],
    )
    assert config.hot_node.enabled and config.hot_node.red_cpu == 70
    assert config.bin_pack_node_memory_bytes == 32 * 2**30
    assert config.scale_down.bin_pack_utilization_threshold == 0.0
    assert config.node_ttl_s == 7 * 86400
    assert config.managed_labels == (("team", "ml"),)


def test_precedence_file_then_environment_then_set() -> None:
    config = build_config(
        {"scaleUpTimeout": "1m"},
        environment={"GIBBOUS_scaleUpTimeout": "2m"},
        overrides=["scaleUpTimeout=3m"],
    )
    assert config.scale_up_timeout_s == 180


def test_luna_spelling_of_node_ttl_is_accepted() -> None:
    assert build_config({"NodeTTL": "30d"}).node_ttl_s == 30 * 86400


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'binSelectPodCpuThreshold'"):
        build_config({"binSelectPodCPUThreshold": 2})


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"scaleUpTimeout": "ten minutes"}, "scaleUpTimeout: invalid duration"),
        ({"spotPriceRatioEstimate": 2}, "out of range"),
        ({"cloudProvider": "ibm"}, "accepted: aws, gcp, azure, oci"),
        ({"binPackingNodeTypeRegexp": "g(3"}, "invalid RE2"),
        ({"binPackingNodePricing": "reserved"}, "spot"),
        ({"manageHighUtilization": {"yellowCPU": 90}}, "yellowCPU <= redCPU"),
        ({"architectures": ["x86"]}, "amd64, arm64"),
        ({"spotTolerations": ["foo"]}, "key=value:Effect"),
    ],
)
def test_bad_values_fail_with_the_key_and_accepted_form(
    document: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        build_config(document)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"nope": 1, "maxNodes": -1})
    assert "nope" in str(raised.value) and "maxNodes" in str(raised.value)


def test_render_round_trips() -> None:
    config = build_config({"nvidiaGPUTimeSlices": 2, "clusterGPULimit": 8})
    assert render_config(build_config(render_config(config))) == render_config(config)


def test_every_option_is_documented() -> None:
    rows = describe_options()
    assert all(help_text for _, _, help_text in rows)
    assert len({key for key, _, _ in rows}) == len(rows)


def test_spot_tolerations_default_to_ours_and_the_clouds() -> None:
    assert Config(cloud="azure").effective_spot_tolerations == (
        "gibbous.dev/capacity-type=spot:NoSchedule",
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule",
    )
    assert Config(cloud="aws").effective_spot_tolerations == (
        "gibbous.dev/capacity-type=spot:NoSchedule",
    )


def test_lunas_aws_values_section_is_accepted_as_is() -> None:
    # The shape of Luna's values files (P07 RKE2, P17 block devices, P04 spot advisor).
    values = {
        "cloudProvider": "aws",
        "aws": {
            "subnets": ["subnet-1234567890"],
            "securityGroups": ["sg-1234567890"],
            "nodeInstanceProfile": "node-instance-profile",
            "amiIdGeneric": "ami-09a13b25443518b29",
            "userDataType": "Template",
            "userData": "#!/bin/bash\n{{- range $k, $v := .Labels }}\n# {{ $k }}={{ $v }}\n{{- end }}\n",
            "blockDeviceMappings": '[{"DeviceName":"/dev/xvda","Ebs":{"DeleteOnTermination":true,"VolumeSize":80,"VolumeType":"gp3","Encrypted":false}}]',
            "useSpotAdvisor": True,
            "spotAdvisorFile": "/etc/gibbous/spot-advisor-data.json",
            "maxSpotInterruptBucket": 1,
            "maxSpotPriceRatio": 0.5,
        },
    }
    aws = build_config(values).aws
    assert aws.subnets == ("subnet-1234567890",) and aws.security_groups == ("sg-1234567890",)
    assert aws.block_device_mappings[0]["Ebs"]["VolumeSize"] == 80
    assert aws.max_spot_interrupt_bucket == 1 and aws.max_spot_price_ratio == 0.5
    overridden = build_config(values, overrides=["aws.subnets={subnet-0aaa1111,subnet-0bbb2222}"])
    assert overridden.aws.subnets == ("subnet-0aaa1111", "subnet-0bbb2222")
    bottlerocket = build_config({"aws": {"isBottlerocketImage": True}}).aws
    assert bottlerocket.effective_user_data_type == "Bottlerocket"


@pytest.mark.parametrize(
    ("aws", "message"),
    [
        ({"userDataType": "Ubuntu"}, "unknown user-data type 'Ubuntu'"),
        ({"userDataType": "Template", "userData": "{{ if .Labels }}"}, "missing {{ end }}"),
        ({"userDataType": "Template"}, "needs aws.userData"),
        (
            {"blockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Size": 80}}]},
            "unknown field 'Size'",
        ),
        ({"blockDeviceMappings": [{"Ebs": {}}]}, "needs DeviceName"),
        ({"subnets": ["subnet_1"]}, "not an id of the form subnet-"),
        ({"amiIdGeneric": "ubuntu"}, "not an AMI id"),
        ({"useSpotAdvisor": True, "spotAdvisorUrl": "s3://bucket/x.json"}, "needs an http(s) URL"),
        ({"maxSpotInterruptBucket": 7}, "out of range"),
        (
            {"userData": "#!/bin/bash\n", "userDataSecret": "rke2-join"},
            "aws.userData and aws.userDataSecret are both set",
        ),
        ({"userDataSecret": "RKE2_join"}, "not a Secret name"),
    ],
)
def test_bad_aws_values_stop_gibbous_at_start(aws: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({"aws": aws})


def test_user_data_in_a_secret_is_left_to_the_autoscaler() -> None:
    # The template lives in the Secret: the configuration has none to check, and a Template
    # type without aws.userData is not an error then.
    aws = build_config({"aws": {"userDataType": "Template", "userDataSecret": "rke2-join"}}).aws
    assert aws.user_data_secret == "rke2-join" and aws.user_data == ""


def test_lunas_gcp_values_section_is_accepted() -> None:
    # P13's Helix values (gcp.diskSizeGb 150) with the options GKE's docs name.
    gcp = build_config(
        {
            "cloudProvider": "gcp",
            "gcp": {
                "diskSizeGb": 150,
                "project": "helix",
                "imageStreaming": True,
                "gpuDriverVersion": "latest",
            },
        }
    ).gcp
    assert (gcp.disk_size_gb, gcp.project, gcp.image_streaming) == (150, "helix", True)
    assert gcp.gpu_driver_version == "latest" and gcp.disk_type == "pd-balanced"


@pytest.mark.parametrize(
    ("gcp", "message"),
    [
        (
            {"diskSize": 150},
            "unknown configuration key 'gcp.diskSize'; did you mean 'gcp.diskSizeGb'?",
        ),
        ({"diskSizeGb": 5}, "gcp.diskSizeGb"),
        ({"diskType": "ssd"}, "gcp.diskType"),
        ({"gpuDriverVersion": "535"}, "gcp.gpuDriverVersion"),
    ],
)
def test_bad_gcp_values_stop_gibbous_at_start(gcp: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({"gcp": gcp})


def test_lunas_azure_values_section_is_accepted() -> None:
    azure = build_config(
        {"azure": {"resourceGroup": "rg", "artifactStreaming": True, "osDiskSizeGB": 256}}
    ).azure
    assert (azure.resource_group, azure.artifact_streaming, azure.os_disk_size_gb) == (
        "rg",
        True,
        256,
    )
    with pytest.raises(ConfigError, match=re.escape("did you mean 'azure.resourceGroup'?")):
        build_config({"azure": {"resourcegroup": "rg"}})


def test_lunas_oci_values_section_is_accepted() -> None:
    oci = build_config(
        {
            "oci": {
                "compartmentId": "ocid1.compartment.oc1..x",
                "clusterId": "ocid1.cluster.oc1.iad.x",
                "subnetId": "ocid1.subnet.oc1.iad.x",
                "availabilityDomains": ["Uocm:US-ASHBURN-AD-1"],
                "bootVolumeSizeGb": 100,
            }
        }
    ).oci
    assert oci.availability_domains == ("Uocm:US-ASHBURN-AD-1",) and oci.boot_volume_size_gb == 100
    with pytest.raises(ConfigError, match=re.escape("did you mean 'oci.subnetId'?")):
        build_config({"oci": {"subnetID": "x"}})


def test_lunas_label_list_form_marks_pods_carrying_any_of_the_labels() -> None:
    # docs.elotl.co/luna/v0.4/configuration: "labels is a list of comma separated key value
    # pairs: key1=value1\,key2=value2 pods with any of the labels will be considered".
    config = build_config({"labels": "key1=value1,key2=value2"})
    assert config.managed_labels == (("key1", "value1"), ("key2", "value2"))
    assert render_config(config)["labels"] == "key1=value1,key2=value2"
    assert build_config(overrides=["labels=team.example.com/autoscale=yes"]).managed_labels == (
        ("team.example.com/autoscale", "yes"),
    )


@pytest.mark.parametrize(
    "value",
    ["key1=value1,key2", "key1=value1,key2=a=b", "=x", "elotl-luna", "bad key=x", ",", "a=b c"],
)
def test_labels_that_are_neither_form_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"labels: .*key1=value1,key2=value2"):
        build_config({"labels": value})


def test_lunas_names_for_options_gibbous_also_names_its_own_way() -> None:
    # luna-spec 11: Luna's GenAI install sets gcp.nodeServiceAccount (GKE image streaming)
    # and azure.enableArtifactStreaming; docs.elotl.co/luna/v0.5/configuration names
    # scaleDown.nodeUnneededDuration (default 5 minutes) and binPackingNodeMinPodCount.
    config = build_config(
        {
            "gcp": {"nodeServiceAccount": "c-elotl@p.iam.gserviceaccount.com"},
            "azure": {"enableArtifactStreaming": True},
            "scaleDown": {"nodeUnneededDuration": "10m"},
            "binPackingNodeMinPodCount": 42,
        }
    )
    assert config.gcp.service_account == "c-elotl@p.iam.gserviceaccount.com"
    assert config.azure.artifact_streaming is True
    assert config.scale_down.unneeded_time_s == 600
    assert config.bin_pack_node_min_pods == 42
    assert build_config().scale_down.unneeded_time_s == 300  # Luna's 5 minutes
    # Gibbous's own names stay.
    assert build_config({"scaleDown": {"unneededTime": "7m"}}).scale_down.unneeded_time_s == 420


@pytest.mark.parametrize(
    ("taint", "accepted"),
    [
        # apimachinery's validation of a taint: the key a qualified name (an optional DNS
        # subdomain prefix and "/", then 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends),
        # the value a label value (empty, or the same 63-character form).
        ("example.com/spot=true:NoSchedule", True),
        ("spot:NoExecute", True),
        ("k8s.io/a_b.c-d=v_1.2-3:PreferNoSchedule", True),
        ("a:b=c:NoSchedule", False),  # ':' in the key
        ("-spot=true:NoSchedule", False),  # key starts with '-'
        ("spot=true!:NoSchedule", False),  # '!' in the value
        ("Example.com/spot=x:NoSchedule", False),  # a prefix is lower-case
        (f"{'k' * 64}=v:NoSchedule", False),  # a name of 64 characters
        (f"spot={'v' * 64}:NoSchedule", False),  # a value of 64 characters
    ],
)
def test_spot_tolerations_take_only_taints_the_api_server_accepts(
    taint: str, accepted: bool
) -> None:
    if accepted:
        assert build_config({"spotTolerations": [taint]}).spot_tolerations == (taint,)
    else:
        with pytest.raises(ConfigError, match=r"spotTolerations: invalid taint"):
            build_config({"spotTolerations": [taint]})

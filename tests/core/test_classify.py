import pytest

from gibbous.core import keys
from gibbous.core.choice.classify import Placement, classify
from gibbous.core.podmodel.pods import pod_requests
from tests.factories import config, make_pod


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("100m", "128Mi", Placement.BIN_PACK),  # P09 Exp. 4 before VPA
        ("2", "128Mi", Placement.BIN_SELECT),  # P09: equal to the threshold is bin-select
        ("163m", "128Mi", Placement.BIN_PACK),  # P09 Exp. 3 after VPA
        ("2406m", "128Mi", Placement.BIN_SELECT),  # P09 Exp. 4 after VPA
        ("1999m", "4Gi", Placement.BIN_SELECT),  # memory threshold
        ("1999m", "4095Mi", Placement.BIN_PACK),
    ],
)
def test_posts_classification_vectors(cpu: str, memory: str, expected: Placement) -> None:
    pod = make_pod(cpu=cpu, memory=memory)
    assert classify(pod_requests(pod), {}, config()).placement is expected


def test_gpu_threshold_default_is_one_and_configurable() -> None:
    pod = make_pod(cpu="1", memory="2G", gpus=1)
    assert classify(pod_requests(pod), {}, config()).placement is Placement.BIN_SELECT
    relaxed = config(binSelectPodGPUThreshold=2)  # P17
    assert classify(pod_requests(pod), {}, relaxed).placement is Placement.BIN_PACK


def test_constraint_annotation_makes_a_pod_bin_select() -> None:
    pod = make_pod(annotations={keys.INSTANCE_OFFERINGS: "on-demand"})  # P15's Ray head
    result = classify(pod_requests(pod), pod["metadata"]["annotations"], config())
    assert result.placement is Placement.BIN_SELECT
    assert keys.INSTANCE_OFFERINGS in result.reason


def test_zero_threshold_disables_that_test_and_disabled_bin_packing_selects_all() -> None:
    pod = make_pod(cpu="8")
    assert (
        classify(pod_requests(pod), {}, config(binSelectPodCpuThreshold=0)).placement
        is Placement.BIN_PACK
    )
    small = make_pod(cpu="10m")
    assert (
        classify(pod_requests(small), {}, config(binPackingEnabled=False)).placement
        is Placement.BIN_SELECT
    )

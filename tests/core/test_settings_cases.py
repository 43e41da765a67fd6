"""Settings rules the mutation report (docs/mutation.md) showed no test held. Expected
values come from Kubernetes' taint effects and annotation form, written here."""

from __future__ import annotations

import pytest

from gibbous.core.errors import ConfigError
from tests.factories import config


@pytest.mark.parametrize("effect", ["NoSchedule", "PreferNoSchedule", "NoExecute"])
def test_spot_tolerations_take_the_three_taint_effects(effect: str) -> None:
    # Kubernetes' taint effects: NoSchedule, PreferNoSchedule, NoExecute; nothing else.
    cfg = config(spotTolerations=[f"capacity=spot:{effect}"])
    assert cfg.spot_tolerations == (f"capacity=spot:{effect}",)


@pytest.mark.parametrize("bad", ["capacity=spot:NoRun", "capacity=spot", ":NoSchedule"])
def test_spot_tolerations_refuse_other_effects(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"spotTolerations: invalid taint"):
        config(spotTolerations=[bad])


@pytest.mark.parametrize("bad", ["team", "team=", "=x"])
def test_pod_annotations_need_a_key_and_a_value(bad: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(podAnnotations=[bad])
    assert f"podAnnotations: invalid annotation {bad!r} in " in str(raised.value)


def test_pod_annotations_in_keyvalue_form() -> None:
    assert config(podAnnotations=["team=ml"]).managed_annotations == (("team", "ml"),)

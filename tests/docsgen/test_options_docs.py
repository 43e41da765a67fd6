"""The generated option files: committed as rendered, and rendered as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gibbous.core.settings.options import OPTIONS
from gibbous.docsgen.options import (
    BEGIN,
    END,
    REFERENCE,
    VALUES,
    MissingMarkersError,
    reference_page,
    render_values,
    rendered_files,
    values_block,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", [VALUES, REFERENCE], ids=str)
def test_committed_files_are_the_options_rendered(path: Path) -> None:
    expected = rendered_files(REPO)[REPO / path]
    assert (REPO / path).read_text() == expected, (
        f"{path} differs from the options in gibbous/core/settings/options: "
        "run scripts/render-options and commit the result"
    )


def test_values_block_states_the_defaults_lunas_posts_give() -> None:
    values = yaml.safe_load(values_block())
    # P09: 2 CPUs; P10: 0.5 and 10m; P17: 1 time slice; P15: the HNM thresholds.
    assert values["binSelectPodCpuThreshold"] == "2"
    assert values["spotPriceRatioEstimate"] == 0.5
    assert values["scaleUpTimeout"] == "10m"
    assert values["nvidiaGPUTimeSlices"] == 1
    assert values["manageHighUtilization"] == {
        "enabled": False,
        "loopPeriod": "1m",
        "yellowCPU": 60,
        "yellowMemory": 65,
        "redCPU": 80,
        "redMemory": 85,
        "greenCPU": 10,
        "greenMemory": 15,
    }


def test_values_block_leaves_the_pending_reason_regexp_unset_as_luna_does() -> None:
    # P08: unset, every pending pod counts.
    (line,) = [x for x in values_block().splitlines() if x.startswith("pendingPodReasonRegexp:")]
    assert line == "pendingPodReasonRegexp: ''"


def test_rendering_values_replaces_only_the_block_between_the_markers() -> None:
    hand_written_head = "# my chart\n\n"
    hand_written_tail = "\n# install settings\nimage: {tag: ''}\n"
    current = f"{hand_written_head}{BEGIN}\nstale: 1\n{END}\n{hand_written_tail}"
    rendered = render_values(current)
    assert rendered.startswith(f"{hand_written_head}{BEGIN}\n# labels that mark pods")
    assert rendered.endswith(f"\n{END}\n{hand_written_tail}")
    assert "\n  sshPublicKey: ''\n" in rendered  # the oci section, between the markers
    assert "stale" not in rendered


def test_rendering_values_without_markers_is_refused() -> None:
    with pytest.raises(MissingMarkersError, match="BEGIN options"):
        render_values("labels: elotl-luna=true\n")


def test_reference_page_names_lunas_spelling_and_keeps_its_tables_whole() -> None:
    page = reference_page()
    # P20 spells the option NodeTTL; Gibbous's key is nodeTTL, default 0s (never).
    assert "| `nodeTTL` | duration (90s, 10m, 1h30m, 7d) | `0s` | `NodeTTL` | 0.1.0 |" in page
    # Gibbous's own option: no Luna name.
    assert "| `binPackingNodeStrategy` | one of lowest-total-cost, cheapest-node " in page
    assert "| `lowest-total-cost` | - | 0.1.0 |" in page
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    # One row per option, whatever the count grows to.
    assert len(rows) == len(OPTIONS)
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 7, row
    assert re.findall(r"^## (.*)$", page, re.MULTILINE) == [
        "General (top level)",
        "Hot-node mitigation (`manageHighUtilization:`)",
        "Scale-down (`scaleDown:`)",
        "Consolidation (`consolidation:`)",
        "Node overhead (`nodeOverhead:`)",
        "Logging (`logging:`)",
        "AWS (`aws:`)",
        "GCP (`gcp:`)",
        "Azure (`azure:`)",
        "OCI (`oci:`)",
    ]

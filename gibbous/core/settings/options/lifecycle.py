"""What Gibbous does with nodes once they run: hot-node mitigation (Luna's
`manageHighUtilization`) and scale-down."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import BOOLEAN, DURATION, PERCENT, number, whole_number


@dataclass(frozen=True)
class HotNodeConfig:
    enabled: bool = False
    loop_period_s: float = 60.0
    yellow_cpu: float = 60.0
    yellow_memory: float = 65.0
    red_cpu: float = 80.0
    red_memory: float = 85.0
    green_cpu: float = 10.0
    green_memory: float = 15.0


@dataclass(frozen=True)
class ScaleDownConfig:
    enabled: bool = True
    unneeded_time_s: float = 300.0
    bin_pack_utilization_threshold: float = 0.2
    bin_select_utilization_threshold: float = 0.75
    delay_after_add_s: float = 300.0
    max_draining_nodes: int = 1
    max_draining_percent: float = 10.0
    # Read only while manageHighUtilization.enabled (gibbous.core.lifecycle.usagefit).
    bin_pack_usage_threshold: float = 0.5
    usage_headroom: float = 10.0
    delay_after_hot_eviction_s: float = 600.0


HOT_NODE = Section(
    "Hot-node mitigation",
    (
        Option(
            key="manageHighUtilization.enabled",
            attribute="hot_node.enabled",
            value_type=BOOLEAN,
            help="hot-node mitigation",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.loopPeriod",
            attribute="hot_node.loop_period_s",
            value_type=DURATION,
            help="how often node metrics are read",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.yellowCPU",
            attribute="hot_node.yellow_cpu",
            value_type=PERCENT,
            help="CPU % at which a node is tainted warm",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.yellowMemory",
            attribute="hot_node.yellow_memory",
            value_type=PERCENT,
            help="memory % at which a node is tainted warm",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.redCPU",
            attribute="hot_node.red_cpu",
            value_type=PERCENT,
            help="CPU % at which a node is tainted hot and one pod evicted",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.redMemory",
            attribute="hot_node.red_memory",
            value_type=PERCENT,
            help="memory % at which a node is tainted hot and one pod evicted",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.greenCPU",
            attribute="hot_node.green_cpu",
            value_type=PERCENT,
            help="below this CPU % (and green memory) the taint is removed",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="manageHighUtilization.greenMemory",
            attribute="hot_node.green_memory",
            value_type=PERCENT,
            help="below this memory % (and green CPU) the taint is removed",
            luna=None,
            since="0.1.0",
        ),
    ),
)

SCALE_DOWN = Section(
    "Scale-down",
    (
        Option(
            key="scaleDown.enabled",
            attribute="scale_down.enabled",
            value_type=BOOLEAN,
            help="remove nodes Gibbous created when they are not needed",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleDown.unneededTime",
            attribute="scale_down.unneeded_time_s",
            value_type=DURATION,
            help="how long a node must be unneeded before removal",
            luna="scaleDown.nodeUnneededDuration",
            since="0.1.0",
        ),
        Option(
            key="scaleDown.binPackNodeUtilizationThreshold",
            attribute="scale_down.bin_pack_utilization_threshold",
            value_type=number(0.0, 1.0),
            help="bin-pack nodes below this request utilization are candidates (0.0: only empty ones)",
            luna="scaleDown.binPackNodeUtilizationThreshold",
            since="0.1.0",
        ),
        Option(
            key="scaleDown.binSelectNodeUtilizationThreshold",
            attribute="scale_down.bin_select_utilization_threshold",
            value_type=number(0.0, 1.0),
            help="bin-select nodes still running pods below this request utilization are candidates when their pods fit elsewhere (0.0: only when their pod is gone)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleDown.delayAfterAdd",
            attribute="scale_down.delay_after_add_s",
            value_type=DURATION,
            help="a new node is not removed before this age",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleDown.maxDrainingNodes",
            attribute="scale_down.max_draining_nodes",
            value_type=whole_number(1),
            help="most nodes drained at once",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleDown.maxDrainingPercent",
            attribute="scale_down.max_draining_percent",
            value_type=PERCENT,
            help="most nodes drained at once, as % of Gibbous nodes",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleDown.binPackNodeUsageThreshold",
            attribute="scale_down.bin_pack_usage_threshold",
            value_type=number(0.0, 1.0),
            help="with manageHighUtilization.enabled: bin-pack nodes whose measured use (metrics.k8s.io, the larger of the CPU and memory shares of capacity) is below this are candidates when their pods fit elsewhere by requests and by use (0.0: by requests only)",
            luna=None,
            since="0.2.0",
        ),
        Option(
            key="scaleDown.usageHeadroom",
            attribute="scale_down.usage_headroom",
            value_type=PERCENT,
            help="with manageHighUtilization.enabled: the pods of a node removed must fit elsewhere with the target's measured use staying this many points below redCPU and redMemory",
            luna=None,
            since="0.2.0",
        ),
        Option(
            key="scaleDown.delayAfterHotEviction",
            attribute="scale_down.delay_after_hot_eviction_s",
            value_type=DURATION,
            help="with manageHighUtilization.enabled: a node hot-node mitigation evicted a pod from is not removed before this has passed",
            luna=None,
            since="0.2.0",
        ),
    ),
)

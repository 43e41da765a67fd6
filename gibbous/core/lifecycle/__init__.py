"""Node and pod lifecycle: intake of pending pods, launches, disruption, hot nodes, scheduler routing."""

"""The autoscaler: pending pods to the cheapest nodes, and what happens to nodes afterwards."""

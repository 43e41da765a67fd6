"""The kube-scheduler extender: filter and prioritize for managed pods."""

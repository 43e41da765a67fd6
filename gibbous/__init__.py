"""Gibbous: a smart cluster autoscaler for Kubernetes GPU and AI workloads."""

__version__ = "0.1.0"

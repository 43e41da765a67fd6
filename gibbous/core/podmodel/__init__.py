"""The pod model: effective requests, node affinity, inter-pod rules, Luna's instance annotations, workloads and KubeRay's pod counts."""

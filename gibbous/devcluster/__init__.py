"""A real Kubernetes control plane on loopback, for end-to-end tests and for trying Gibbous."""

"""How Kubernetes and Luna write values: quantities, numbers, durations, RE2 patterns, Go templates."""

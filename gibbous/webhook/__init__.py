"""The admission webhook: mutating and validating endpoints for Pods, served over TLS."""

"""Planning: the packing simulation, inter-pod rules, scale-up decisions, estimates, batching and back-off."""

"""`python -m bench.race`: Gibbous against the real Karpenter, on the same control plane,
the same instance types and prices, the same node stand-in and the same workload trace,
measured from the API server's Node and Pod objects only (see bench/README.md).

Modules: `catalog` (one catalog, two formats), `trace` (the trace format and the named
scenarios), `clusters` (a fresh dev cluster per run, with Gibbous or Karpenter), `replay`
and `observe` (the trace in, the objects out), `metrics` (pure: what the objects say),
`report` (table, JSON and the HTML report).
"""

"""How `gibbous autoscaler --provider NAME` becomes a running `CloudProvider`, one module per
provider beside its implementation in `gibbous.autoscaler.cloud`, Karpenter's way: each module
has a `PROVIDER` (its name, its one-line summary for `--help` and its `build`), and
`registry.PROVIDERS` lists them.

Adding a cloud: its provider in `cloud/<name>.py`, its start in `providers/<name>.py` (the SDK
imported inside `build`, so that the command line starts without it), and one line in
`registry.py`. Options only it reads go with `gibbous autoscaler`'s in
`gibbous.commands.autoscaler`."""

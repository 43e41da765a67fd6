"""GCP emulated for the dev cluster: `state` (what the emulator holds and the node agent
reads), `emulator` (GKE's and Compute's APIs over it), `agent` (the kubelets of its
instances), and `__main__` (both as one process)."""

"""Azure emulated for the dev cluster: `state` (what the emulator holds and the node agent
reads), `emulator` (AKS's part of ARM over it), `agent` (the kubelets of its machines), and
`__main__` (both as one process)."""

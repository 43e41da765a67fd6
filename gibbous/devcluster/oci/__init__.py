"""OCI emulated for the dev cluster: `state` (the tenancy, and what the emulator holds and
the node agent reads), `emulator` (Container Engine's and Identity's APIs over it), `agent`
(the kubelets of its nodes), and `__main__` (both as one process)."""

"""AWS emulated for the dev cluster: `state` (the account it seeds), `emulator` (moto's EC2
and EKS, with what moto lacks), `agent` (the kubelets of its instances, reading them
through EC2's API), and `__main__` (both as one process)."""

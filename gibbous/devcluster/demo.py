"""The demo `dev-cluster up` prints: the same commands as docs/getting-started.md's
dev-cluster demo (tests/cli/test_devcluster_report.py holds the two together)."""

from __future__ import annotations

from pathlib import Path

# A Deployment whose pods Gibbous manages from the start (the `elotl-luna` label on the pod
# template), then the wait that holds until its pods run on the node Gibbous made.
DEPLOYMENT_DEMO = """\
kubectl apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  replicas: 3
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo, elotl-luna: "true"}
    spec:
      containers:
      - name: pause
        image: registry.k8s.io/pause:3.9
YAML
kubectl rollout status deployment/demo --timeout=120s
kubectl get nodes -L node.kubernetes.io/instance-type,gibbous.dev/price-per-hour"""


def export_line(kubeconfig: Path) -> str:
    # Absolute, so the line works from any directory whatever --dir was given as.
    return f"export KUBECONFIG={kubeconfig.absolute()}"

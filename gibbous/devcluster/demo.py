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

# The chart installed as docs/install/helm.md gives it, then what the API server stored.
# Without `--wait`: the chart's pods never become ready here (no node runs them).
HELM_DEMO = """\
helm install gibbous charts/gibbous --namespace gibbous --create-namespace \
  --set image.repository=registry.example.com/gibbous
kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations
kubectl get deployments,pods --namespace gibbous"""


def export_line(kubeconfig: Path) -> str:
    # Absolute, so the line works from any directory whatever --dir was given as.
    return f"export KUBECONFIG={kubeconfig.absolute()}"


def without_gibbous_report(directory: Path, server: str, kubeconfig: Path, emulator: str) -> str:
    """What `up --without-gibbous` started and the chart install of docs/install/helm.md
    to try in it, from the root of the checkout."""
    lines = [
        f"Kubernetes dev cluster up in {directory}, without Gibbous",
        f"  API server   {server}",
        "  scheduler    default-scheduler only",
    ]
    if emulator:
        lines.append(f"  emulator     {emulator} (a Node for each instance launched in it)")
    lines += [
        f"  logs         {directory}/*.log",
        "",
        "No node exists and none is made (no autoscaler runs), and nothing here runs containers:",
        "the chart's objects are stored and its pods stay Pending.",
        "",
        "Install the chart (docs/install/helm.md; helm and kubectl needed):",
        "",
        export_line(kubeconfig),
        HELM_DEMO,
        "",
        "gibbous dev-cluster status | down",
    ]
    return "\n".join(lines) + "\n"

#!/usr/bin/env python3
"""kube-inject on large manifests: meshctl next to a peer measured in the same run.

The peer is `kubectl create --dry-run=client -o yaml -f` (the kubectl built by e2e/cluster.sh,
against the local cluster for API discovery only): Kubernetes' own Go code reading every
document of the same file, mapping its kind and printing it again, which is the part of
`istioctl kube-inject`'s work that is not injection. istioctl itself cannot be built here: the
Go module proxy refuses istio.io/istio's versions (it has no semver tags) and the istio.io/api
pseudo-versions its main branch needs (403). `kubectl kustomize` was tried first and dropped:
it is quadratic in the number of resources (8 s for 2,500 documents, 48 s for 5,000).

Reports, per size: best-of-3 wall time and peak RSS for both and their ratios, and meshctl's
RSS growth per 1,000 documents since the previous size (flat means linear).

Needs the local cluster up (e2e/cluster.sh up) and a release build of meshctl.

  bench/kube_inject.py [--sizes 2500,5000,10000,20000] [--meshctl PATH] [--kubectl PATH]
"""
import os
import shutil
import tempfile

from common import arguments, best


def manifest(documents):
    """A mesh of small services: Deployment, Service, ConfigMap, ServiceAccount each."""
    parts = []
    for i in range(documents // 4):
        name = f"svc-{i:05d}"
        parts.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: team-{i % 50}
  labels: {{app: {name}, version: v1}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}, version: v1}}
  template:
    metadata:
      labels: {{app: {name}, version: v1}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "8080"}}
    spec:
      serviceAccountName: {name}
      containers:
      - name: app
        image: registry.example.com/{name}:1.0.{i}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 5}}
        resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}""")
        parts.append(f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: team-{i % 50}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]""")
        parts.append(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-config, namespace: team-{i % 50}}}
data: {{LOG_LEVEL: info, UPSTREAM: "http://svc-{(i + 1):05d}"}}""")
        parts.append(f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: team-{i % 50}}}""")
    return "\n---\n".join(parts) + "\n"


def main():
    args = arguments("2500,5000,10000,20000")
    kubectl = args.kubectl

    work = tempfile.mkdtemp(prefix="meshctl-bench-")
    env_cmd = ["env", "KUBECONFIG=/nonexistent"]
    kubeconfig = subprocess.run([os.path.join(ROOT, "e2e/cluster.sh"), "kubeconfig"],
                                capture_output=True, text=True).stdout.strip()
    previous = None
    print(f"{'docs':>6} {'meshctl s':>10} {'kubectl s':>10} {'time ratio':>10} "
          f"{'meshctl MiB':>12} {'kubectl MiB':>11} {'RSS ratio':>9} {'meshctl KiB per +1k docs':>22}")
    try:
        for size in args.sizes:
            path = os.path.join(work, f"mesh-{size}.yaml")
            with open(path, "w") as f:
                f.write(manifest(size))
            ours = best(env_cmd + [args.meshctl, "kube-inject", "--profile", "default", "-f", path])
            peer = best([kubectl, "--kubeconfig", kubeconfig, "create", "--dry-run=client",
                         "-o", "yaml", "-f", path])
            growth = "" if previous is None else \
                f"{(ours[1] - previous[1]) * 1000 / (size - previous[0]):.0f}"
            previous = (size, ours[1])
            print(f"{size:>6} {ours[0]:>10.3f} {peer[0]:>10.3f} {ours[0] / peer[0]:>10.2f} "
                  f"{ours[1] / 1024:>12.1f} {peer[1] / 1024:>11.1f} {ours[1] / peer[1]:>9.2f} "
                  f"{growth:>22}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

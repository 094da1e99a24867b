#!/usr/bin/env python3
"""meshctl analyze on a large generated mesh: time and peak RSS at several sizes, next to a peer
measured in the same run on the same files.

The mesh: 50 namespaces of apps, each app a ServiceAccount, Service, Deployment,
VirtualService (header route, weighted canary, default) and DestinationRule (2 subsets), plus per 10 apps a Gateway, and per 20 apps a ServiceEntry, an
AuthorizationPolicy and a PeerAuthentication. One VirtualService in 100 routes to a subset no
DestinationRule defines, so the analyzers have something to report.

The peer: istioctl itself cannot be built here (the Go module proxy refuses istio.io/istio: no
semver tags, and its istio.io/api pseudo-versions answer 403). The peer is the kubectl that
e2e/cluster.sh builds, as in bench/kube_inject.py, running `kubectl label --local -f FILE -o name`
with KUBECONFIG pointing nowhere: Kubernetes' own Go code reading every document of the same
file into an unstructured object (YAML to JSON to maps), changing it and naming it, without a
server. That is the first step `istioctl analyze --use-kube=false` takes too (it then converts
every object to its typed form, stores them and runs its analyzers), so the time ratio against
it is conservative: istioctl would be slower than the peer, not faster. The peer streams one
object at a time, so its RSS stays flat; an analyzer must hold the whole mesh to follow
references across it (istioctl holds it too), so the RSS ratio is not like for like: read it
with the RSS per 1,000 resources, which shows meshctl's growth is linear. (`kubectl kustomize`,
the peer of bench/kube_inject.py, grows quadratically with the document count: 4 s for 2,000
documents here, so it cannot be measured at these sizes.)

Reports, per size: best-of-3 wall time, peak RSS and CPU time (user + system) for both, their
ratios, and meshctl's time and RSS per 1,000 resources (flat means linear growth).

  bench/analyze.py [--sizes 12500,25000,50000,100000] [--meshctl PATH] [--kubectl PATH]

Needs a release build (cargo build --release -p meshctl) and the cluster's binaries
(e2e/cluster.sh build); the cluster itself need not run.
"""
import os
import shutil
import tempfile

from common import arguments, best
NAMESPACES = 50


def app(i):
    ns = f"team-{i % NAMESPACES}"
    name = f"svc-{i:06d}"
    subset = "v4" if i % 100 == 99 else "all"
    docs = [
        f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {ns}}}""",
        f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}""",
        f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, version: v1}}
      annotations: {{prometheus.io/scrape: "true", sidecar.istio.io/proxyCPU: 50m}}
    spec:
      serviceAccountName: {name}
      containers:
      - name: app
        image: registry.example.com/{name}:1.0.{i}
        ports: [{{name: http, containerPort: 8080}}]
        resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}""",
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - match:
    - headers: {{end-user: {{exact: tester}}}}
    route:
    - destination: {{host: {name}, subset: all}}
  - match:
    - uri: {{prefix: /api}}
    route:
    - destination: {{host: {name}, subset: v1}}
      weight: 90
    - destination: {{host: {name}, subset: {subset}}}
      weight: 10
    retries: {{attempts: 3, perTryTimeout: 2s}}
  - route:
    - destination: {{host: {name}, subset: v1}}""",
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
  trafficPolicy:
    connectionPool: {{tcp: {{maxConnections: 100}}}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: all, labels: {{app: {name}}}}}""",
    ]
    if i % 10 == 0:
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["{name}.example.com"]""")
    if i % 20 == 0:
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-{name}, namespace: {ns}}}
spec:
  hosts: [api-{i}.partner.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: 443, name: tls, protocol: TLS}}]""")
        docs.append(f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  rules:
  - from:
    - source: {{principals: [cluster.local/ns/{ns}/sa/{name}]}}""")
        docs.append(f"""apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  mtls: {{mode: STRICT}}""")
    return docs


def manifest(resources):
    """Exactly `resources` documents: the namespaces, the mesh's gateway, then apps."""
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-{n}, labels: {{istio-injection: enabled}}}}"
            for n in range(NAMESPACES)]
    docs.append("""apiVersion: apps/v1
kind: Deployment
metadata: {name: mesh-ingressgateway, namespace: mesh-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  template:
    metadata: {labels: {istio: ingressgateway}, annotations: {sidecar.istio.io/inject: "false"}}
    spec: {containers: [{name: istio-proxy, image: mesh-proxy}]}""")
    docs.append("""apiVersion: v1
kind: Service
metadata: {name: mesh-ingressgateway, namespace: mesh-system}
spec:
  selector: {istio: ingressgateway}
  ports: [{name: http2, port: 80, targetPort: 8080}]""")
    i = 0
    while len(docs) < resources:
        docs.extend(app(i))
        i += 1
    return "\n---\n".join(docs[:resources]) + "\n"


def main():
    args = arguments("12500,25000,50000,100000")
    kubectl = args.kubectl

    work = tempfile.mkdtemp(prefix="meshctl-bench-analyze-")
    print(f"{'resources':>9} {'meshctl s':>9} {'kubectl s':>9} {'time ratio':>10} "
          f"{'meshctl MiB':>11} {'kubectl MiB':>11} {'RSS ratio':>9} {'meshctl CPU s':>13} {'kubectl CPU s':>13} "
          f"{'CPU ratio':>9} {'meshctl ms/1k':>13} {'meshctl MiB/1k':>14}")
    try:
        for size in args.sizes:
            path = os.path.join(work, f"mesh-{size}.yaml")
            with open(path, "w") as f:
                f.write(manifest(size))
            # 79: the planted mistakes are found.
            offline = ["env", "KUBECONFIG=/nonexistent"]
            ours = best(offline + [args.meshctl, "analyze", "--use-kube=false", "-o", "json", path],
                        ok_codes=(79,))
            peer = best(offline + [kubectl, "label", "--local", "-f", path, "-o", "name", "bench=1"])
            print(f"{size:>9} {ours[0]:>9.3f} {peer[0]:>9.3f} {ours[0] / peer[0]:>10.2f} "
                  f"{ours[1] / 1024:>11.1f} {peer[1] / 1024:>11.1f} {ours[1] / peer[1]:>9.2f} "
                  f"{ours[2]:>13.3f} {peer[2]:>13.3f} {ours[2] / peer[2]:>9.2f} "
                  f"{ours[0] * 1e6 / size:>13.1f} {ours[1] / 1024 * 1000 / size:>14.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

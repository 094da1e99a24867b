#!/usr/bin/env python3
"""meshd's configuration push under load: N simulated proxies on one meshd, a mesh of S services
in the real local cluster, and the time from the API server accepting a VirtualService change
until every proxy holds it.

    bench/meshd_push.py [--proxies 100,500,1000,2000] [--services 1000] [--namespaces 10]
                        [--changes 10] [--idle 5] [--keep-mesh] [--skip-build] [--no-pin]
                        [--json FILE] [--meshd PATH]

The mesh, created through the API server of the shared local cluster (`e2e/cluster.sh up`) in
namespaces `bench-push-0..K-1`: per service a ServiceAccount, a Service (selector
`app: svc-<j>`, ports http 80 and grpc 9090), two pods (versions v1 and v2, named, labelled and
sized like injected Deployment pods), an EndpointSlice listing both as ready, a DestinationRule
with subsets v1 and v2, and a VirtualService splitting 90/10 between them with a timeout and
retries. The pods are never scheduled (a scheduling gate: kwok's nodes hold 220 pods, shared
with everyone); the bench sets their addresses and readiness itself, so meshd watches 2*S real
pod objects and labels the endpoints from them. No Sidecar resources, every object exported
everywhere: Istio's default, in which every proxy receives every service (what istiod's
published figures are for).

For each N, a fresh release-build meshd (`meshd serve`, pinned to CPU 0) and `meshd-load`
(bench/meshd-load, pinned to CPU 1): N proxies, each a real gRPC client with its own connection
and delta stream, ACKing every response. Proxy i is pod i (its name, namespace, labels,
workload and address), N <= 2*S, so any N spreads over the namespaces. Measured:

- initial sync: from the proxies starting to connect until every one holds a complete set of
  every type (all connect at once, as after a meshd restart), and meshd's CPU for it; the
  load generator's CPU too, since decoding N copies of the mesh on one core bounds this time;
- per change (a merge patch of one VirtualService's weights, --changes times, a different one
  each time, --idle seconds apart): from the API server's answer to the PATCH (it accepted the
  change) until each proxy decoded the response carrying the new version: p50/p90/p99/max over
  every proxy and change, and the worst change's p99; how many responses of each type went out
  (a precise push sends one VirtualService per proxy and nothing else); the configuration
  builds meshd logged meanwhile (more than one: something else changed in the cluster);
- meshd CPU (utime+stime of /proc/<pid>/stat) per change (from the PATCH until every proxy has
  it) and per second of idle between changes (from 0.5 s after the last arrival, --idle s);
- meshd RSS: before the proxies connect, peak (VmHWM) and steady (after the last idle period).

Targets (issue 9): 2,000 proxies and 1,000 services: p99 <= 1 s, RSS < 150 MB, CPU idle
between changes. istiod itself cannot be built here (the Go module proxy refuses
istio.io/istio's versions), so there is no same-run peer: the figures are compared with what
Istio publishes for istiod, 1 vCPU and 1.5 GB of memory for 1,000 services and 2,000 sidecars
(istio.io, "Performance and Scalability"). The machine has 2 cores shared with other work:
repeat a run before trusting a single figure.

meshd runs with a service account of its own whose RBAC lets it read the cluster but write only
in its namespaces, so its trust-bundle ConfigMaps never overwrite another meshd's in the shared
cluster. Everything the bench creates is deleted at the end (unless --keep-mesh).
"""

import argparse
import base64
import calendar
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/meshctl/target"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PREFIX = "bench-push-"
MESHD_NS = PREFIX + "meshd"
RBAC_NAME = "bench-push-meshd"
ISTIOD_CPU = 1.0
ISTIOD_MEMORY_MB = 1536


def log(msg):
    print(f"[meshd_push {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    log("building meshd and meshctl (release) and meshd-load")
    sh(["cargo", "build", "-q", "--locked", "--release", "-p", "meshd", "-p", "meshctl"], cwd=ROOT, env=env)
    sh(["cargo", "build", "-q", "--release", "--manifest-path", os.path.join(ROOT, "bench/meshd-load/Cargo.toml")], env=env)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Api:
    """The API server over HTTPS with the admin kubeconfig's client certificate."""

    def __init__(self, kubeconfig, tmp):
        cfg = json.loads(subprocess.run([os.path.join(ROOT, "e2e/cluster.sh"), "kubectl", "config", "view", "--raw", "-o", "json"],
                                        check=True, capture_output=True, env=dict(os.environ, KUBECONFIG=kubeconfig)).stdout)
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = cluster["server"]
        files = {}
        for key, field in (("ca", cluster["certificate-authority-data"]), ("cert", user["client-certificate-data"]), ("key", user["client-key-data"])):
            path = os.path.join(tmp, f"admin-{key}.pem")
            with open(path, "wb") as f:
                f.write(base64.b64decode(field))
            files[key] = path
        self.ca_data = cluster["certificate-authority-data"]
        self.ctx = ssl.create_default_context(cafile=files["ca"])
        self.ctx.load_cert_chain(files["cert"], files["key"])
        hostport = self.server.split("://", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.local = threading.local()

    def request(self, method, path, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
                self.local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                return resp.status, (json.loads(text) if text else {})
            except (http.client.HTTPException, OSError, json.JSONDecodeError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def must(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        status, answer = self.request(method, path, body, content_type)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {answer.get('message', answer)}")
        return answer


def core(ns, kind):
    return f"/api/v1/namespaces/{ns}/{kind}"


def istio(ns, kind):
    return f"/apis/networking.istio.io/v1/namespaces/{ns}/{kind}"


def pod_ip(p):
    return socket.inet_ntoa(((10 << 24) | (246 << 16) | (p + 1)).to_bytes(4, "big"))


def pods_of(services, namespaces):
    """Two pods per service (versions v1 and v2), as Deployments name and label them: pod p is
    of service p % S, v1 for the first S. Proxy i is pod i, so any N spreads over the
    namespaces."""
    pods = []
    for p in range(2 * services):
        g = p % services
        version = "v1" if p < services else "v2"
        app = f"svc-{g // namespaces}"
        workload = f"{app}-{version}"
        template = hashlib.sha1(f"{g % namespaces}/{workload}".encode()).hexdigest()[:10]
        suffix = hashlib.sha1(str(p).encode()).hexdigest()[:5]
        pods.append({"namespace": f"{PREFIX}{g % namespaces}", "name": f"{workload}-{template}-{suffix}", "ip": pod_ip(p),
                     "labels": {"app": app, "version": version, "pod-template-hash": template,
                                "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": app,
                                "service.istio.io/canonical-revision": version},
                     "workload": workload, "serviceAccount": app, "service": g})
    return pods


def pod_object(pod):
    """An injected pod's spec, roughly the size of a real one."""
    env = [{"name": k, "value": v} for k, v in (
        ("PILOT_CERT_PROVIDER", "istiod"), ("CA_ADDR", "meshd.mesh-system.svc:15012"), ("ISTIO_META_CLUSTER_ID", "Kubernetes"),
        ("ISTIO_META_WORKLOAD_NAME", pod["workload"]), ("ISTIO_META_MESH_ID", "cluster.local"), ("TRUST_DOMAIN", "cluster.local"))]
    env += [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod["name"], "labels": pod["labels"],
                     "annotations": {"sidecar.istio.io/status": json.dumps({"initContainers": ["istio-init"], "containers": ["istio-proxy"],
                                                                            "volumes": ["istio-envoy", "istio-data", "istio-token", "istiod-ca-cert"]})}},
        "spec": {
            # Never scheduled: kwok's nodes hold 220 pods, shared with everyone; the bench sets
            # the pods' addresses itself.
            "schedulingGates": [{"name": "bench.meshctl.dev/never"}],
            "initContainers": [{"name": "istio-init", "image": "meshctl/proxy:bench", "args": ["iptables", "-p", "15001", "-z", "15006", "-u", "1337"],
                                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0}}],
            "containers": [
                {"name": "app", "image": f"bench/{pod['workload']}:1", "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "grpc"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                {"name": "istio-proxy", "image": "meshctl/proxy:bench", "args": ["run", "--log-level", "warn"], "env": env,
                 "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15},
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
                 "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"name": "istio-envoy", "mountPath": "/etc/istio/proxy"}, {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
                                  {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"}]}],
            "serviceAccountName": pod["serviceAccount"],
            "volumes": [{"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
                        {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
                        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}]}}


def service_objects(ns, j, pods):
    """ServiceAccount, Service, EndpointSlice (its pods, ready), DestinationRule and VirtualService
    of svc-j."""
    name = f"svc-{j}"
    return [
        (core(ns, "serviceaccounts"), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        (core(ns, "services"), {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": {"app": name}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "grpc", "port": 9090, "targetPort": 9090, "appProtocol": "grpc"}]}}),
        # The endpoint slice controller leaves pods without a node out of its own slice, so
        # the bench lists them in one of its own, as the controller would.
        (f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-bench", "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "bench.meshctl.dev"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "grpc", "port": 9090, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p["ip"]], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "namespace": ns, "name": p["name"]}} for p in pods]}),
        (istio(ns, "destinationrules"), {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name},
            "spec": {"host": name,
                     "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                     "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}),
        (istio(ns, "virtualservices"), {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {"hosts": [name], "http": [vs_route(name, 90)]}}),
    ]


def vs_route(name, weight):
    return {"route": [{"destination": {"host": name, "subset": "v1"}, "weight": weight},
                      {"destination": {"host": name, "subset": "v2"}, "weight": 100 - weight}],
            "timeout": "5s", "retries": {"attempts": 3, "perTryTimeout": "2s"}}


def create_mesh(api, services, namespaces, pods):
    t0 = time.time()
    # A previous run's namespaces may still be going.
    while any(n.get("status", {}).get("phase") == "Terminating" for n in api.must(
            "GET", "/api/v1/namespaces?labelSelector=bench.meshctl.dev%2Fpush%3Dtrue")["items"]):
        if time.time() - t0 > 600:
            raise RuntimeError(f"namespaces {PREFIX}* still terminating after 10 minutes")
        time.sleep(2)
    for i in list(range(namespaces)) + ["meshd"]:
        status, _ = api.request("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": f"{PREFIX}{i}", "labels": {"bench.meshctl.dev/push": "true"}}})
        if status not in (201, 409):
            raise RuntimeError(f"creating namespace {PREFIX}{i}: HTTP {status}")
    by_service = {}
    for p in pods:
        by_service.setdefault(p["service"], []).append(p)
    work = []
    for g in range(services):
        work += service_objects(f"{PREFIX}{g % namespaces}", g // namespaces, by_service[g])

    def create(item):
        path, body = item
        status, answer = api.request("POST", path, body)
        if status not in (201, 409):
            raise RuntimeError(f"POST {path} {body['metadata']['name']}: HTTP {status}: {answer.get('message')}")
        return status

    def create_pod(pod):
        if create((core(pod["namespace"], "pods"), pod_object(pod))) == 201:
            api.must("PATCH", f"{core(pod['namespace'], 'pods')}/{pod['name']}/status", {"status": {
                "podIP": pod["ip"], "podIPs": [{"ip": pod["ip"]}],
                "conditions": [{"type": "Ready", "status": "True"}]}}, content_type="application/merge-patch+json")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, work))
        list(pool.map(create_pod, pods))
    log(f"mesh of {services} services and {len(pods)} pods in {namespaces} namespaces: {len(work) + len(pods)} objects in {time.time() - t0:.1f} s")
    # The endpoint slice controller makes a slice per Service (empty: the pods have no node),
    # at its own pace; a meshd measured meanwhile would be rebuilding for it.
    deadline = time.time() + 600
    while True:
        made = 0
        for i in range(namespaces):
            made += len(api.must("GET", f"/apis/discovery.k8s.io/v1/namespaces/{PREFIX}{i}/endpointslices"
                                        "?labelSelector=endpointslice.kubernetes.io%2Fmanaged-by%3Dendpointslice-controller.k8s.io")["items"])
        if made >= services:
            break
        if time.time() > deadline:
            raise RuntimeError(f"the endpoint slice controller made {made} of {services} slices in 10 minutes")
        time.sleep(2)
    time.sleep(2)
    log(f"the cluster settled after {time.time() - t0:.1f} s")


def meshd_identity(api, tmp):
    """A service account for meshd: reads the cluster, writes only in the bench namespaces."""
    namespaces = [n["metadata"]["name"] for n in api.must("GET", "/api/v1/namespaces?labelSelector=bench.meshctl.dev%2Fpush%3Dtrue")["items"]]
    read = ["get", "list", "watch"]
    api.request("POST", core(MESHD_NS, "serviceaccounts"), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "meshd"}})
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    subject = [{"kind": "ServiceAccount", "name": "meshd", "namespace": MESHD_NS}]
    api.request("POST", f"{rbac}/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": RBAC_NAME},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "pods", "namespaces", "configmaps"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["networking.istio.io", "security.istio.io"], "resources": ["*"], "verbs": read},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"], "verbs": read},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]})
    api.request("POST", f"{rbac}/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": RBAC_NAME},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RBAC_NAME}, "subjects": subject})
    for ns in namespaces:
        api.request("POST", f"{rbac}/namespaces/{ns}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": RBAC_NAME},
            "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets", "events"], "verbs": read + ["create", "update", "patch"]},
                      {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}]})
        api.request("POST", f"{rbac}/namespaces/{ns}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": RBAC_NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RBAC_NAME}, "subjects": subject})
    token = api.must("POST", core(MESHD_NS, "serviceaccounts/meshd/token"), {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 86400}})["status"]["token"]
    path = os.path.join(tmp, "meshd.kubeconfig")
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "bench",
                   "clusters": [{"name": "bench", "cluster": {"server": api.server, "certificate-authority-data": api.ca_data}}],
                   "users": [{"name": "meshd", "user": {"token": token}}],
                   "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "meshd"}}]}, f)
    return path


def meshd_files(tmp):
    """The injector and mesh config files of a rendered install, as meshd mounts them."""
    import yaml  # PyYAML, for the rendered manifest

    out = subprocess.run([os.path.join(TARGET, "release/meshctl"), "manifest", "generate", "--profile", "minimal", "--set", f"namespace={MESHD_NS}"],
                         check=True, capture_output=True, text=True).stdout
    inject = os.path.join(tmp, "inject")
    os.makedirs(inject, exist_ok=True)
    mesh = os.path.join(tmp, "mesh")
    for doc in yaml.safe_load_all(out):
        if not doc or doc.get("kind") != "ConfigMap":
            continue
        data = doc.get("data", {})
        if doc["metadata"]["name"].startswith("mesh-sidecar-injector"):
            for key in ("values", "config"):
                with open(os.path.join(inject, key), "w") as f:
                    f.write(data.get(key, ""))
        elif doc["metadata"]["name"] == "mesh" or doc["metadata"]["name"].startswith("mesh-"):
            if "mesh" in data:
                with open(mesh, "w") as f:
                    f.write(data["mesh"])
    if not os.path.exists(os.path.join(inject, "values")) or not os.path.exists(mesh):
        raise RuntimeError("the rendered manifest has no injector or mesh ConfigMap")
    return inject, mesh


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK  # utime + stime, ms


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


class Meshd:
    def __init__(self, kubeconfig, inject, mesh, tmp, pin, binary=None):
        self.grpc = free_port()
        self.debug = free_port()
        self.log_path = os.path.join(tmp, f"meshd-{time.time_ns()}.log")
        # MESHD_WRAP: a profiler to run meshd under, e.g. "valgrind --tool=massif".
        wrap = os.environ.get("MESHD_WRAP", "").split()
        cmd = (["taskset", "-c", "0"] if pin else []) + wrap + [
            binary or os.path.join(TARGET, "release/meshd"), "serve", "--kubeconfig", kubeconfig, "--namespace", MESHD_NS,
            "--revision", "bench", "--service", "meshd-bench",
            "--injector-webhook", f"{PREFIX}none-injector", "--validator-webhook", f"{PREFIX}none-validator",
            "--inject-config", inject, "--mesh-config", mesh,
            f"--webhook-addr=127.0.0.1:{free_port()}", f"--debug-addr=127.0.0.1:{self.debug}",
            f"--monitoring-addr=127.0.0.1:{free_port()}", f"--grpc-addr=127.0.0.1:{self.grpc}",
            f"--grpc-tls-addr=127.0.0.1:{free_port()}"]
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, RUST_LOG=os.environ.get("MESHD_LOG", "warn,mesh_controlplane::discovery::watch=debug")))
        self.pid = self.proc.pid
        deadline = time.time() + 120
        while "first configuration built" not in self.log():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"meshd did not build its first configuration; log {self.log_path}:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def builds(self, since_ns, until_ns):
        """The configurations meshd built in [since, until]: how long each took, in ms."""
        out = []
        for line in re.sub(r"\x1b\[[0-9;]*m", "", self.log()).splitlines():
            if "configuration built" not in line or "took=" not in line:
                continue
            stamp = line.split()[0].rstrip("Z")
            whole, _, frac = stamp.partition(".")
            at = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int((frac + "000000000")[:9])
            if since_ns <= at <= until_ns:
                took = line.split("took=")[1].split()[0]
                number = float(re.match(r"[0-9.]+", took).group(0))
                unit = took[len(re.match(r"[0-9.]+", took).group(0)):]
                out.append(number * {"s": 1000, "ms": 1, "µs": 0.001, "us": 0.001, "ns": 1e-6}.get(unit, 1))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


class Load:
    def __init__(self, grpc, proxies, pods_file, pin):
        cmd = (["taskset", "-c", "1"] if pin else []) + [
            os.path.join(TARGET, "release/meshd-load"), "--addr", f"http://127.0.0.1:{grpc}", "--proxies", str(proxies),
            "--pods", pods_file]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("meshd-load ended")
        return json.loads(answer)

    def stop(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def pct(values):
    if not values:
        return {}
    values = sorted(values)
    at = lambda q: values[round((len(values) - 1) * q)]
    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": values[-1]}


def run_n(n, args, api, kubeconfig, inject, mesh, tmp, pods_file):
    meshd = Meshd(kubeconfig, inject, mesh, tmp, not args.no_pin, args.meshd)
    result = {"proxies": n, "services": args.services}
    load = None
    try:
        time.sleep(1)
        result["rss_before_mb"] = proc_mem(meshd.pid)["VmRSS"]
        cpu0 = proc_stat(meshd.pid)
        load = Load(meshd.grpc, n, pods_file, not args.no_pin)
        sync = load.ask("sync 300")
        # The proxies' side: on one core, decoding every proxy's copy of the mesh.
        result["sync_load_cpu_ms"] = proc_stat(load.proc.pid)
        if sync["timed_out"] or sync["failed"]:
            raise RuntimeError(f"{n} proxies did not sync: {json.dumps(sync)[:2000]}")
        result["sync_s"] = sync["sync_seconds"]["max"]
        result["sync_p50_s"] = sync["sync_seconds"]["p50"]
        result["sync_cpu_ms"] = proc_stat(meshd.pid) - cpu0
        result["sync_mb_received"] = sum(sync["bytes"].values()) / 1e6
        result["sync_mb_per_proxy_by_type"] = {t: b / n / 1e6 for t, b in sync["bytes"].items()}
        result["held"] = sync["held"]
        mem = proc_mem(meshd.pid)
        result["rss_after_sync_mb"] = mem["VmRSS"]
        result["rss_peak_sync_mb"] = mem["VmHWM"]
        log(f"N={n}: synced in {result['sync_s']:.2f} s, RSS {mem['VmRSS']:.0f} MB (peak {mem['VmHWM']:.0f}); holding {sync['held']}")
        time.sleep(2)
        changes = []
        idle = []
        pooled = []
        for c in range(args.changes):
            g = random.randrange(args.services)
            ns, name = f"{PREFIX}{g % args.namespaces}", f"svc-{g // args.namespaces}"
            current = api.must("GET", f"{istio(ns, 'virtualservices')}/{name}")
            weight = current["spec"]["http"][0]["route"][0]["weight"]
            new = random.choice([w for w in range(1, 100) if w != weight])
            cpu_before, load_before = proc_stat(meshd.pid), proc_stat(load.proc.pid)
            sent = time.time_ns()
            api.must("PATCH", f"{istio(ns, 'virtualservices')}/{name}", {"spec": {"http": [vs_route(name, new)]}},
                     content_type="application/merge-patch+json")
            accepted = time.time_ns()
            answer = load.ask(f"wait {ns}/{name} {sent} 30")
            cpu_change = proc_stat(meshd.pid) - cpu_before
            # The proxies' side of it: one core receiving and ACKing N responses in turn, which
            # is part of the spread between the first and the last arrival.
            load_cpu_change = proc_stat(load.proc.pid) - load_before
            lat = [(a - accepted) / 1e6 for a in answer["arrived"]]
            pooled += lat
            pushes = answer["responses"]
            change = {"vs": f"{ns}/{name}", "apiserver_ms": (accepted - sent) / 1e6, "latency_ms": pct(lat),
                      "arrived": len(lat), "missing": answer["missing"], "timed_out": answer["timed_out"],
                      "versions": len(answer["versions"]), "responses": pushes, "cpu_ms": cpu_change, "load_cpu_ms": load_cpu_change,
                      "builds_ms": meshd.builds(sent, max(answer["arrived"], default=time.time_ns()))}
            changes.append(change)
            log(f"N={n} change {c + 1}: {len(lat)} proxies, p50 {change['latency_ms'].get('p50', 0):.0f} ms, "
                f"p99 {change['latency_ms'].get('p99', 0):.0f} ms, max {change['latency_ms'].get('max', 0):.0f} ms, "
                f"missing {answer['missing']}, cpu {cpu_change:.0f} ms, builds {[round(b) for b in change['builds_ms']]} ms, pushes {pushes}")
            time.sleep(0.5)
            t0, c0, since = time.time(), proc_stat(meshd.pid), time.time_ns()
            time.sleep(args.idle)
            window = time.time() - t0
            spurious = load.ask(f"responses {since}")["responses"]
            idle.append({"cpu_ms_per_s": (proc_stat(meshd.pid) - c0) / window, "responses": spurious})
        mem = proc_mem(meshd.pid)
        result["rss_steady_mb"] = mem["VmRSS"]
        result["rss_peak_mb"] = mem["VmHWM"]
        result["changes"] = changes
        result["idle"] = idle
        # Over every proxy and every change; and the worst single change's p99.
        result["latency_ms"] = pct(pooled)
        result["worst_change_p99_ms"] = max((ch["latency_ms"]["p99"] for ch in changes if ch["latency_ms"]), default=None)
        result["change_cpu_ms"] = sorted(ch["cpu_ms"] for ch in changes)[len(changes) // 2]
        result["load_cpu_per_change_ms"] = sorted(ch["load_cpu_ms"] for ch in changes)[len(changes) // 2]
        result["build_ms"] = sorted(sum(ch["builds_ms"]) for ch in changes)[len(changes) // 2]
        # A change that took more than one build: something else in the shared cluster changed
        # in the same moment (or a watch re-listed).
        result["changes_with_other_builds"] = sum(1 for ch in changes if len(ch["builds_ms"]) > 1)
        result["idle_cpu_ms_per_s"] = sorted(i["cpu_ms_per_s"] for i in idle)[len(idle) // 2]
        result["idle_cpu_ms_per_s_max"] = max(i["cpu_ms_per_s"] for i in idle)
        result["all_arrived"] = all(ch["missing"] == 0 and not ch["timed_out"] and ch["versions"] == 1 for ch in changes)
        return result
    finally:
        if load:
            load.stop()
        meshd.stop()
        result["meshd_log"] = meshd.log_path


def cleanup(api, keep_mesh):
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.request("DELETE", f"{rbac}/clusterrolebindings/{RBAC_NAME}")
    api.request("DELETE", f"{rbac}/clusterroles/{RBAC_NAME}")
    if keep_mesh:
        return
    namespaces = api.must("GET", "/api/v1/namespaces?labelSelector=bench.meshctl.dev%2Fpush%3Dtrue")["items"]
    for ns in namespaces:
        api.request("DELETE", f"/api/v1/namespaces/{ns['metadata']['name']}")
    log(f"deleted {len(namespaces)} namespaces {PREFIX}*")


def table(results):
    lines = ["| proxies | initial sync (meshd CPU) | change p50 | p90 | p99 | max | worst change p99 | build | meshd CPU per change | meshd CPU idle | RSS before proxies | RSS peak | RSS steady |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lat = r["latency_ms"]
        lines.append(f"| {r['proxies']} | {r['sync_s']:.2f} s ({r['sync_cpu_ms'] / 1000:.2f} s) | {lat['p50']:.0f} ms | {lat['p90']:.0f} ms | "
                     f"{lat['p99']:.0f} ms | {lat['max']:.0f} ms | {r['worst_change_p99_ms']:.0f} ms | {r['build_ms']:.0f} ms | {r['change_cpu_ms']:.0f} ms | "
                     f"{r['idle_cpu_ms_per_s']:.1f} ms/s | {r['rss_before_mb']:.0f} MB | {r['rss_peak_mb']:.0f} MB | {r['rss_steady_mb']:.0f} MB |")
    return "\n".join(lines)


def growth(results):
    if len(results) < 2:
        return ""
    a, b = results[0], results[-1]
    more = b["proxies"] - a["proxies"]
    return (f"from {a['proxies']} to {b['proxies']} proxies: RSS +{(b['rss_peak_mb'] - a['rss_peak_mb']) * 1024 / more:.0f} KB per proxy, "
            f"CPU per change +{(b['change_cpu_ms'] - a['change_cpu_ms']) * 1000 / more:.0f} us per proxy, "
            f"p50 {a['latency_ms']['p50']:.0f} -> {b['latency_ms']['p50']:.0f} ms, p99 {a['latency_ms']['p99']:.0f} -> {b['latency_ms']['p99']:.0f} ms, "
            f"initial sync {a['sync_s']:.2f} -> {b['sync_s']:.2f} s (load generator CPU {b['sync_load_cpu_ms'] / 1000:.1f} s at {b['proxies']})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proxies", default="100,500,1000,2000")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--keep-mesh", action="store_true", help="leave the bench namespaces for the next run")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not pin meshd to CPU 0 and the proxies to CPU 1")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--meshd", help="the meshd binary to measure (default: the release build), e.g. an older one to compare")
    args = ap.parse_args()
    if not args.skip_build:
        build()
    kubeconfig = subprocess.run([os.path.join(ROOT, "e2e/cluster.sh"), "up"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    tmp = tempfile.mkdtemp(prefix="meshd-push-")
    api = Api(kubeconfig, tmp)
    results = []
    try:
        pods = pods_of(args.services, args.namespaces)
        counts = [int(x) for x in args.proxies.split(",")]
        if max(counts) > len(pods):
            raise SystemExit(f"at most {len(pods)} proxies (two pods per service)")
        pods_file = os.path.join(tmp, "pods.jsonl")
        with open(pods_file, "w") as f:
            for p in pods:
                f.write(json.dumps(p) + "\n")
        create_mesh(api, args.services, args.namespaces, pods)
        meshd_kubeconfig = meshd_identity(api, tmp)
        inject, mesh = meshd_files(tmp)
        for n in counts:
            results.append(run_n(n, args, api, meshd_kubeconfig, inject, mesh, tmp, pods_file))
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=1)
    finally:
        cleanup(api, args.keep_mesh)
    print(f"\nmeshd push, {args.services} services, {args.changes} VirtualService changes per row; "
          "latency from the API server accepting the change to each proxy decoding it, over every proxy and change; "
          "build (meshd's configuration build for the change), CPU per change and idle: medians\n")
    print(table(results))
    print("\n" + growth(results))
    last = results[-1]
    print(f"\nistiod (published, no same-run peer here): {ISTIOD_CPU:g} vCPU and {ISTIOD_MEMORY_MB / 1024:g} GB for 1,000 services and "
          f"2,000 sidecars; meshd at {last['proxies']} proxies: peak RSS {last['rss_peak_mb']:.0f} MB "
          f"({last['rss_peak_mb'] / ISTIOD_MEMORY_MB:.1%} of istiod's), {last['change_cpu_ms']:.0f} ms of one core per change")
    met = [last["latency_ms"]["p99"] <= 1000, last["rss_peak_mb"] < 150, last["idle_cpu_ms_per_s_max"] <= 5]
    print(f"targets at {last['proxies']} proxies, {args.services} services: p99 <= 1 s: {'met' if met[0] else 'MISSED'}; "
          f"RSS < 150 MB: {'met' if met[1] else 'MISSED'}; idle between changes (<= 5 ms/s): {'met' if met[2] else 'MISSED'}")
    ok = all(r["all_arrived"] for r in results)
    print(f"every change reached every proxy, one version each: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

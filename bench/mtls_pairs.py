"""Sidecar pairs with mutual TLS between them: `bench/proxy.py --mtls`.

    client (loadgen) -> client proxy -> mTLS -> server proxy -> backend (nginx, fixed 200)

Three pairs, each proxy with one worker, the same certificates (a root, and a client and a
server certificate with SPIFFE URI SANs plus a DNS SAN for the peers that check names):

- mesh-proxy: the client sidecar with auto mTLS to the server sidecar (identity verified),
  the server sidecar STRICT with an AuthorizationPolicy (ALLOW by principal, a DENY rule),
  both with full telemetry: Istio metrics, access logs on (stdout, to /dev/null here),
  tracing at Istio's default 1% sampling exported to a local Zipkin stand-in;
- nginx: proxy_pass https with proxy_ssl_certificate, verify on, session reuse, upstream
  keepalive; the server side ssl_verify_client on;
- HAProxy: server ... ssl crt verify required, http-reuse always; bind ... ssl verify required.

Measured in one run, round-robin over the pairs and the direct path: latency at --rate
(default here 1,000 req/s) over 16 connections, and CPU-ms per 1,000 requests of each proxy.
Reported: added p99 over direct, CPU per proxy, and ratios to the nginx and HAProxy pairs.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

NGINX_CLIENT = """
worker_processes 1;
daemon off;
pid {dir}/nginx-client.pid;
error_log {dir}/nginx-client.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  upstream server_sidecar {{ server 127.0.0.1:{upstream}; keepalive 64; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass https://server_sidecar;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate {dir}/client.crt;
      proxy_ssl_certificate_key {dir}/client.key;
      proxy_ssl_trusted_certificate {dir}/root.crt;
      proxy_ssl_verify on;
      proxy_ssl_name server.bench;
      proxy_ssl_session_reuse on;
    }}
  }}
}}
"""

NGINX_SERVER = """
worker_processes 1;
daemon off;
pid {dir}/nginx-server.pid;
error_log {dir}/nginx-server.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  upstream app {{ server 127.0.0.1:{backend}; keepalive 64; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
    ssl_certificate {dir}/server.crt;
    ssl_certificate_key {dir}/server.key;
    ssl_client_certificate {dir}/root.crt;
    ssl_verify_client on;
    ssl_session_cache shared:SSL:1m;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""

HAPROXY_CLIENT = """
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend in
  bind 127.0.0.1:{port}
  default_backend server_sidecar
backend server_sidecar
  server s1 127.0.0.1:{upstream} ssl crt {dir}/client.pem ca-file {dir}/root.crt verify required verifyhost server.bench sni str(server.bench)
"""

HAPROXY_SERVER = """
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend in
  bind 127.0.0.1:{port} ssl crt {dir}/server.pem ca-file {dir}/root.crt verify required
  default_backend app
backend app
  server b1 127.0.0.1:{backend}
"""

MESH_CLIENT = """node: {{workload: bench-client, namespace: bench, serviceAccount: client, labels: {{app: bench-client, version: v1}}}}
certificates: {{directory: {dir}/mesh-client}}
listeners: [{{name: bench, address: '127.0.0.1:{port}'}}]
services:
  - host: backend.bench.svc.cluster.local
    aliases: [bench, backend]
    ports: [{{number: 80, name: http}}]
    endpoints:
      - {{address: 127.0.0.1, port: {upstream}, workload: backend-v1, serviceAccount: server, labels: {{app: backend, version: v1, security.istio.io/tlsMode: istio}}}}
accessLog: {{mode: ON, encoding: TEXT}}
tracing: {{sampling: 1, zipkin: {{address: '127.0.0.1:{zipkin}'}}}}
"""

MESH_SERVER = """node: {{workload: backend-v1, namespace: bench, serviceAccount: server, labels: {{app: backend, version: v1}}}}
certificates: {{directory: {dir}/mesh-server}}
listeners: [{{name: inbound, address: '127.0.0.1:{port}', defaultEndpoint: '127.0.0.1:{backend}'}}]
inbound:
  service: backend.bench.svc.cluster.local
  ports: [{{number: {backend}, name: http}}]
  peerAuthentication: {{mtls: {{mode: STRICT}}}}
  authorizationPolicies:
    - name: allow-client
      namespace: bench
      rules:
        - from: [{{source: {{principals: [cluster.local/ns/bench/sa/client]}}}}]
          to: [{{operation: {{methods: [GET, POST], paths: ['/*']}}}}]
    - name: deny-admin
      namespace: bench
      action: DENY
      rules: [{{to: [{{operation: {{paths: ['/admin/*']}}}}]}}]
accessLog: {{mode: ON, encoding: TEXT}}
tracing: {{sampling: 1, zipkin: {{address: '127.0.0.1:{zipkin}'}}}}
"""


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """A root, a server and a client certificate (EC P-256, as meshd issues), in PEM."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "root.key", "-out", "root.crt", "-days", "30", "-subj", "/O=cluster.local/CN=bench root",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,digitalSignature",
            cwd=d)
    for name in ("server", "client"):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/{name},DNS:{name}.bench\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/O=cluster.local/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "root.crt", "-CAkey", "root.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "30", "-extfile", f"{name}.ext", cwd=d)
        # HAProxy takes certificate and key in one file; mesh-proxy the agent's three files.
        with open(os.path.join(d, f"{name}.pem"), "w") as out:
            for part in (f"{name}.crt", f"{name}.key"):
                with open(os.path.join(d, part)) as f:
                    out.write(f.read())
        mesh = os.path.join(d, f"mesh-{name}")
        os.makedirs(mesh, exist_ok=True)
        for src, dst in ((f"{name}.crt", "cert-chain.pem"), (f"{name}.key", "key.pem"), ("root.crt", "root-cert.pem")):
            with open(os.path.join(d, src)) as f, open(os.path.join(mesh, dst), "w") as g:
                g.write(f.read())


class Collector(http.server.BaseHTTPRequestHandler):
    """Takes Zipkin POSTs and drops them."""
    spans = 0

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        body = self.rfile.read(n)
        try:
            Collector.spans += len(json.loads(body))
        except ValueError:
            pass
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def start_collector(port):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Collector)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run(b, mesh_proxy, nginx, haproxy, loadgen, args, d):
    """`b` is bench/proxy.py's module (helpers: start, stop, free_port, wait_port, tree,
    cpu_ms, ticks, fixed_rate, median, NGINX_BACKEND)."""
    make_certs(d)
    procs = []
    zipkin = b.free_port()
    collector = start_collector(zipkin)
    try:
        bport = b.free_port()
        with open(f"{d}/backend.conf", "w") as f:
            f.write(b.NGINX_BACKEND.format(dir=d, port=bport))
        procs.append(b.start([nginx, "-c", f"{d}/backend.conf", "-p", d], 1))
        b.wait_port(bport)
        pairs = [("direct", bport, [])]

        def pair(name, make):
            sport, cport = b.free_port(), b.free_port()
            server, client = make(sport, cport)
            procs.extend([server, client])
            pairs.append((name, cport, [("client", client), ("server", server)]))

        def nginx_pair(sport, cport):
            with open(f"{d}/nginx-server.conf", "w") as f:
                f.write(NGINX_SERVER.format(dir=d, port=sport, backend=bport))
            with open(f"{d}/nginx-client.conf", "w") as f:
                f.write(NGINX_CLIENT.format(dir=d, port=cport, upstream=sport))
            return (b.start([nginx, "-c", f"{d}/nginx-server.conf", "-p", d], 0),
                    b.start([nginx, "-c", f"{d}/nginx-client.conf", "-p", d], 0))

        def haproxy_pair(sport, cport):
            with open(f"{d}/haproxy-server.cfg", "w") as f:
                f.write(HAPROXY_SERVER.format(dir=d, port=sport, backend=bport))
            with open(f"{d}/haproxy-client.cfg", "w") as f:
                f.write(HAPROXY_CLIENT.format(dir=d, port=cport, upstream=sport))
            return (b.start([haproxy, "-f", f"{d}/haproxy-server.cfg"], 0),
                    b.start([haproxy, "-f", f"{d}/haproxy-client.cfg"], 0))

        def mesh_pair(sport, cport):
            def proxy(conf):
                return b.start([mesh_proxy, "run", "--config", conf, "--workers", "1", "--log-level", "warn",
                                "--admin", f"127.0.0.1:{b.free_port()}", "--health", f"127.0.0.1:{b.free_port()}",
                                "--metrics", f"127.0.0.1:{b.free_port()}"], 0)
            with open(f"{d}/mesh-server.yaml", "w") as f:
                f.write(MESH_SERVER.format(dir=d, port=sport, backend=bport, zipkin=zipkin))
            with open(f"{d}/mesh-client.yaml", "w") as f:
                f.write(MESH_CLIENT.format(dir=d, port=cport, upstream=sport, zipkin=zipkin))
            return proxy(f"{d}/mesh-server.yaml"), proxy(f"{d}/mesh-client.yaml")

        pair("nginx", nginx_pair)
        pair("haproxy", haproxy_pair)
        pair("mesh-proxy", mesh_pair)
        runs = {name: [] for name, _, _ in pairs}
        for name, port, _ in pairs:
            b.wait_port(port)
            time.sleep(0.3)
            # Warm up: connections, TLS sessions, pools.
            subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", "-d1s", "-H", "Host: bench",
                            f"http://127.0.0.1:{port}/"], capture_output=True)
        for r in range(args.rounds):
            for name, port, ps in pairs:
                pids = {role: b.tree(p.pid) for role, p in ps}
                t0 = {role: b.cpu_ms(p) for role, p in pids.items()}
                k0 = {role: b.ticks(p) for role, p in pids.items()}
                fixed = b.fixed_rate(port, loadgen, args)
                t1 = {role: b.cpu_ms(p) for role, p in pids.items()}
                k1 = {role: b.ticks(p) for role, p in pids.items()}
                served = (fixed["requests"] + args.rate * 1) / 1000.0  # the warm-up second too
                cpu = {role: (t1[role] - t0[role]) / served for role in pids}
                kernel = {role: (k1[role][1] - k0[role][1]) / max(1, sum(k1[role]) - sum(k0[role])) for role in pids}
                run = {"p50_ms": fixed["p50_ms"], "p99_ms": fixed["p99_ms"],
                       "errors": fixed["errors"] + fixed["non_200"], **{f"cpu_{k}": v for k, v in cpu.items()},
                       **{f"kernel_share_{k}": v for k, v in kernel.items()}}
                runs[name].append(run)
                print(f"  round {r + 1} {name}: {json.dumps(run)}", file=sys.stderr)
    finally:
        for p in reversed(procs):
            b.stop(p)
        collector.shutdown()

    res = {}
    for name, rs in runs.items():
        keys = rs[0].keys()
        res[name] = {k: b.median([x[k] for x in rs]) for k in keys if k != "errors"}
        res[name]["errors"] = sum(x["errors"] for x in rs)
    direct = res["direct"]["p99_ms"]
    print()
    print(f"mTLS pairs at {args.rate} req/s, 16 connections, median of {args.rounds} rounds of {args.seconds:g}s")
    print(f"{'':12} {'p50 ms':>8} {'p99 ms':>8} {'added p99':>10} {'CPU-ms/1k client':>17} {'server':>8} {'errors':>7}")
    for name, r in res.items():
        added = r["p99_ms"] - direct
        print(f"{name:12} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {added if name != 'direct' else 0:10.3f} "
              f"{r.get('cpu_client', float('nan')):17.1f} {r.get('cpu_server', float('nan')):8.1f} {r['errors']:7d}")
    mp, ng, ha = res["mesh-proxy"], res["nginx"], res["haproxy"]
    print()
    for peer, o in (("nginx", ng), ("haproxy", ha)):
        added_mp, added_o = mp["p99_ms"] - direct, o["p99_ms"] - direct
        ratio = added_mp / added_o if added_o > 0 else float("nan")
        print(f"mesh-proxy / {peer}: added p99 {added_mp:.3f} vs {added_o:.3f} ms ({ratio:.2f}x); CPU per 1k "
              f"client {mp['cpu_client'] / o['cpu_client']:.2f}x, server {mp['cpu_server'] / o['cpu_server']:.2f}x")
    # Each round ran every pair seconds apart: the median of the rounds' own ratios is steadier
    # on a shared machine than a ratio of medians.
    print("the same, as the median of each round's own ratio:")
    for peer in ("nginx", "haproxy"):
        rounds = list(zip(runs["direct"], runs["mesh-proxy"], runs[peer]))
        added = b.median([(m["p99_ms"] - d["p99_ms"]) / (o["p99_ms"] - d["p99_ms"])
                          for d, m, o in rounds if o["p99_ms"] > d["p99_ms"]])
        cpu = {role: b.round_ratio({"rounds": runs["mesh-proxy"]}, {"rounds": runs[peer]}, f"cpu_{role}")
               for role in ("client", "server")}
        print(f"  mesh-proxy / {peer}: added p99 {added:.2f}x; CPU per 1k client {cpu['client']:.2f}x, server {cpu['server']:.2f}x")
    # Other load only adds to a figure: the best round of each is the least disturbed.
    best = {name: {k: min(x[k] for x in rs) for k in rs[0].keys() if k != "errors"} for name, rs in runs.items()}
    bd = best["direct"]["p99_ms"]
    print("best of the rounds:")
    for peer in ("nginx", "haproxy"):
        m, o = best["mesh-proxy"], best[peer]
        am, ao = m["p99_ms"] - bd, o["p99_ms"] - bd
        print(f"  mesh-proxy / {peer}: added p99 {am:.3f} vs {ao:.3f} ms ({am / ao if ao > 0 else float('nan'):.2f}x); "
              f"CPU per 1k client {m['cpu_client']:.1f} vs {o['cpu_client']:.1f} ({m['cpu_client'] / o['cpu_client']:.2f}x), "
              f"server {m['cpu_server']:.1f} vs {o['cpu_server']:.1f} ({m['cpu_server'] / o['cpu_server']:.2f}x)")
    print("kernel share of each proxy's CPU (median): " + ", ".join(
        f"{name} client {res[name]['kernel_share_client']:.0%} server {res[name]['kernel_share_server']:.0%}"
        for name in ("nginx", "haproxy", "mesh-proxy")))
    ng_k = res["nginx"]["kernel_share_server"] * res["nginx"]["cpu_server"]
    print(f"  (the nginx server's kernel time alone: {ng_k:.1f} CPU-ms/1k, against a target of "
          f"{0.5 * res['nginx']['cpu_server']:.1f} for a whole proxy)")
    res["best"] = best
    print(f"spans received by the collector: {Collector.spans}")
    print("targets: added p99 <= the nginx pair's and < 0.3 ms; each proxy's CPU per 1k <= 0.5x the nginx pair's")
    return res

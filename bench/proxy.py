#!/usr/bin/env python3
"""mesh-proxy against nginx and HAProxy as reverse proxies, in one run, on one machine.

    bench/proxy.py [--rounds 7] [--seconds 3] [--rate 2000] [--services 1000] [--skip-install]

A fast backend (nginx, one worker, a fixed 200) stands behind each proxy in turn: nginx
(one worker, upstream keepalive), HAProxy (one thread, connection reuse) and mesh-proxy (one
worker, with a config of --services services loaded), plus the direct path to the backend.
For each: p50/p90/p99 at a fixed rate (--rate req/s over 16 connections, open loop, by
bench/loadgen), CPU-ms of the proxy's processes per 1,000 requests at that rate, RSS after
the run, and max requests/s closed loop (wrk, 32 connections). The proxy runs on CPU 0, the
backend and the load generators on CPU 1. The targets are measured round-robin, --rounds
times, and each figure is the median of its rounds, and also the best of its rounds (lowest
latency and CPU, highest req/s): machines are shared and noisy, and other load only ever adds
to a figure, so the best round is the one least disturbed. Read the ratios.

    bench/proxy.py --instructions

counts user-space instructions per proxied request under callgrind instead (one service
configured): a figure the machine's other load does not move.

Installs what it needs: nginx, haproxy, wrk (and valgrind) from Debian, the load generator
and mesh-proxy built with cargo (profile release-proxy).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/meshctl/target"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_tools(skip):
    missing = [t for t in ("nginx", "haproxy", "wrk", "taskset") if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t)]
    if missing and not skip:
        print(f"installing {missing} from Debian", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        pkgs = ["nginx", "haproxy", "wrk", "util-linux"]
        if subprocess.run(["apt-get", "install", "-y", "-q"] + pkgs, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            sh(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            sh(["apt-get", "install", "-y", "-q"] + pkgs, env=env, stdout=subprocess.DEVNULL)
    print("building mesh-proxy (release-proxy) and the load generator", file=sys.stderr)
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    sh(["cargo", "build", "-q", "--locked", "--profile", "release-proxy", "-p", "mesh-proxy"], cwd=ROOT, env=env)
    sh(["cargo", "build", "-q", "--release", "--manifest-path", os.path.join(ROOT, "bench/loadgen/Cargo.toml")], env=env)
    return os.path.join(TARGET, "release-proxy/mesh-proxy"), os.path.join(TARGET, "release/mesh-loadgen")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def tree(pid):
    """pid and its descendants."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        kids = []
    for k in kids:
        out += tree(int(k))
    return out


def cpu_ms(pids):
    """CPU time (user + system) of the processes, in ms: from each thread's schedstat
    (nanoseconds on CPU) where the kernel keeps it, else from stat's clock ticks (10 ms steps,
    coarse for a few hundred ms of CPU)."""
    total = 0.0
    for p in pids:
        try:
            ns = 0
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
            total += ns / 1e6
        except (OSError, ValueError, IndexError):
            total += sum(ticks([p])) * 1000.0 / CLK_TCK
    return total


def ticks(pids):
    """(user, system) clock ticks of the processes, for the kernel's share of their CPU."""
    u = k = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            u, k = u + int(fields[11]), k + int(fields[12])
        except OSError:
            pass
    return u, k


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


NGINX_BACKEND = """
worker_processes 1;
daemon off;
pid {dir}/backend.pid;
error_log {dir}/backend.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ return 200 "hello from the backend\\n"; }}
  }}
}}
"""

NGINX_PROXY = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""

HAPROXY = """
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
  default_backend app
backend app
  server b1 127.0.0.1:{backend}
"""


def mesh_config(port, backend, services):
    lines = [
        "listeners:",
        f"  - name: bench",
        f"    address: 127.0.0.1:{port}",
        "node: {workload: bench-client, namespace: bench, labels: {app: bench-client, version: v1}}",
        "services:",
        "  - host: backend.bench.svc.cluster.local",
        "    aliases: [bench, backend]",
        "    addresses: [10.200.0.1]",
        "    ports: [{number: 80, name: http}]",
        f"    endpoints: [{{address: 127.0.0.1, port: {backend}, workload: backend-v1, labels: {{app: backend, version: v1}}}}]",
    ]
    for i in range(services - 1):
        a, b = divmod(i + 2, 250)
        lines += [
            f"  - host: svc-{i}.ns-{i % 50}.svc.cluster.local",
            f"    aliases: [svc-{i}, svc-{i}.ns-{i % 50}]",
            f"    addresses: [10.201.{a}.{b}]",
            "    ports: [{number: 80, name: http}, {number: 9090, name: grpc-api}]",
            f"    endpoints: [{{address: 10.202.{a}.{b}, labels: {{app: svc-{i}, version: v1}}}}, {{address: 10.203.{a}.{b}, labels: {{app: svc-{i}, version: v2}}}}]",
        ]
    # Some routing to compile as well: a VirtualService and DestinationRule every 10 services.
    lines.append("virtualServices:")
    for i in range(0, services - 1, 10):
        lines += [
            f"  - hosts: [svc-{i}.ns-{i % 50}.svc.cluster.local]",
            "    http:",
            "      - match: [{headers: {x-canary: {exact: 'yes'}}}]",
            f"        route: [{{destination: {{host: svc-{i}.ns-{i % 50}.svc.cluster.local, subset: v2}}}}]",
            f"      - route: [{{destination: {{host: svc-{i}.ns-{i % 50}.svc.cluster.local, subset: v1}}}}]",
            "        retries: {attempts: 2, retryOn: 5xx}",
        ]
    lines.append("destinationRules:")
    for i in range(0, services - 1, 10):
        lines += [
            f"  - host: svc-{i}.ns-{i % 50}.svc.cluster.local",
            "    subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]",
        ]
    return "\n".join(lines) + "\n"


def start(cmd, cpu, **kw):
    return subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def fixed_rate(port, loadgen, args):
    out = subprocess.run(
        ["taskset", "-c", "1", loadgen, "--addr", f"127.0.0.1:{port}", "--host", "bench", "--connections", "16",
         "--rate", str(args.rate), "--seconds", str(args.seconds), "--warmup", "1"],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def closed_loop(port, args):
    wrk = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{int(args.seconds)}s", "-H", "Host: bench", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(next(l.split()[1] for l in wrk.splitlines() if l.startswith("Requests/sec")))
    errors = [l.strip() for l in wrk.splitlines() if "Non-2xx" in l or "Socket errors" in l]
    return rps, errors


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def measure_all(targets, loadgen, args):
    """Round-robin over the targets, --rounds times, so that background load on a shared
    machine hits them alike; medians per target."""
    runs = {name: [] for name, _, _ in targets}
    idle = {}
    for name, port, proc in targets:
        wait_port(port)
        time.sleep(0.5)
        idle[name] = rss_kb(tree(proc.pid)) / 1024.0 if proc else float("nan")
        # Warm up connections, pools and caches.
        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", "-d2s", "-H", "Host: bench", f"http://127.0.0.1:{port}/"], capture_output=True)
    for r in range(args.rounds):
        for name, port, proc in targets:
            pids = tree(proc.pid) if proc else []
            t0, k0 = cpu_ms(pids), ticks(pids)
            fixed = fixed_rate(port, loadgen, args)
            t1, k1 = cpu_ms(pids), ticks(pids)
            served = fixed["requests"] + args.rate * 1  # the warm-up second is served too
            cpu = (t1 - t0) / (served / 1000.0) if proc else float("nan")
            kernel = (k1[1] - k0[1]) / max(1, sum(k1) - sum(k0)) if proc else float("nan")
            c0, w0 = cpu_ms(pids), time.time()
            rps, errors = closed_loop(port, args)
            busy = (cpu_ms(pids) - c0) / ((time.time() - w0) * 10.0) if proc else float("nan")
            run = {"p50_ms": fixed["p50_ms"], "p90_ms": fixed["p90_ms"], "p99_ms": fixed["p99_ms"],
                   "fixed_errors": fixed["errors"] + fixed["non_200"], "cpu_ms_per_1k": cpu, "max_rps": rps,
                   "kernel_share": kernel, "busy_pct_closed_loop": busy, "wrk_errors": errors}
            runs[name].append(run)
            print(f"  round {r + 1} {name}: {json.dumps(run)}", file=sys.stderr)
    results = []
    for name, port, proc in targets:
        rs = runs[name]
        results.append({
            "name": name,
            **{k: median([x[k] for x in rs]) for k in ("p50_ms", "p90_ms", "p99_ms", "cpu_ms_per_1k", "max_rps",
                                                       "kernel_share", "busy_pct_closed_loop")},
            **{f"best_{k}": min(x[k] for x in rs) for k in ("p50_ms", "p90_ms", "p99_ms", "cpu_ms_per_1k")},
            "best_max_rps": max(x["max_rps"] for x in rs),
            "rss_mb": rss_kb(tree(proc.pid)) / 1024.0 if proc else float("nan"),
            "rss_idle_mb": idle[name],
            "errors": sum(x["fixed_errors"] for x in rs) + sum(len(x["wrk_errors"]) for x in rs),
            "rounds": rs,
        })
    return results


def round_ratio(a, b, key):
    """The median over rounds of a's figure over b's in the same round: the two ran seconds apart,
    so load that came and went on a shared machine weighs on both alike."""
    return median([x[key] / y[key] for x, y in zip(a["rounds"], b["rounds"]) if y[key]])


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def instructions_per_request(name, cmd, port, loadgen, d):
    """User-space instructions per proxied request, counted by callgrind: repeatable whatever
    else the machine does. Two runs (1,000 and 5,000 requests at 500 req/s over 16
    connections); the difference cancels start-up and idle work."""
    totals = {}
    for n in (1000, 5000):
        out = f"{d}/cg-{name}-{n}.out"
        p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, timeout=120)
            time.sleep(1)
            subprocess.run([loadgen, "--addr", f"127.0.0.1:{port}", "--host", "bench", "--connections", "16",
                            "--rate", "500", "--seconds", str(n / 500), "--warmup", "0"],
                           capture_output=True, check=True)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        totals[n] = callgrind_total(out)
    per = (totals[5000] - totals[1000]) / 4000
    print(f"  {name}: {per:,.0f} instructions per request", file=sys.stderr)
    return per


def count_instructions(mesh_proxy, nginx, haproxy, loadgen):
    """The --instructions mode: nginx, HAProxy and mesh-proxy (one service) under callgrind."""
    d = tempfile.mkdtemp(prefix="proxy-bench-cg-")
    procs = []
    try:
        bport = free_port()
        with open(f"{d}/backend.conf", "w") as f:
            f.write(NGINX_BACKEND.format(dir=d, port=bport))
        procs.append(start([nginx, "-c", f"{d}/backend.conf", "-p", d], 1))
        wait_port(bport)
        results = {}
        port = free_port()
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(NGINX_PROXY.format(dir=d, port=port, backend=bport).replace("daemon off;", "daemon off;\nmaster_process off;"))
        results["nginx"] = instructions_per_request("nginx", [nginx, "-c", f"{d}/nginx.conf", "-p", d], port, loadgen, d)
        port = free_port()
        with open(f"{d}/haproxy.cfg", "w") as f:
            f.write(HAPROXY.format(port=port, backend=bport))
        results["haproxy"] = instructions_per_request("haproxy", [haproxy, "-f", f"{d}/haproxy.cfg"], port, loadgen, d)
        port = free_port()
        with open(f"{d}/mesh.yaml", "w") as f:
            f.write(mesh_config(port, bport, 1))
        results["mesh-proxy"] = instructions_per_request(
            "mesh-proxy",
            [mesh_proxy, "run", "--config", f"{d}/mesh.yaml", "--log-level", "warn", "--admin", f"127.0.0.1:{free_port()}",
             "--health", f"127.0.0.1:{free_port()}", "--metrics", f"127.0.0.1:{free_port()}"], port, loadgen, d)
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(d, ignore_errors=True)
    print()
    for k, v in results.items():
        print(f"{k:12} {v:10,.0f} user-space instructions per request")
    for peer in ("nginx", "haproxy"):
        print(f"mesh-proxy / {peer}: {results['mesh-proxy'] / results[peer]:.2f}x")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--mtls", action="store_true",
                    help="instead: sidecar pairs with mutual TLS (mesh-proxy, nginx, HAProxy) against direct; "
                         "see bench/mtls_pairs.py (default rate there 1,000 req/s)")
    ap.add_argument("--instructions", action="store_true",
                    help="instead: user-space instructions per request under callgrind (valgrind), noise-free")
    args = ap.parse_args()
    mesh_proxy, loadgen = ensure_tools(args.skip_install)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if args.mtls:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import mtls_pairs
        if "--rate" not in sys.argv:
            args.rate = 1000
        d = tempfile.mkdtemp(prefix="proxy-mtls-bench-")
        try:
            results = mtls_pairs.run(sys.modules[__name__], mesh_proxy, nginx, haproxy, loadgen, args, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return
    if args.instructions:
        if not shutil.which("valgrind"):
            sh(["apt-get", "install", "-y", "-q", "valgrind"], stdout=subprocess.DEVNULL)
        results = count_instructions(mesh_proxy, nginx, haproxy, loadgen)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return
    d = tempfile.mkdtemp(prefix="proxy-bench-")
    bport = free_port()
    with open(f"{d}/backend.conf", "w") as f:
        f.write(NGINX_BACKEND.format(dir=d, port=bport))
    procs = []
    try:
        backend = start([nginx, "-c", f"{d}/backend.conf", "-p", d], 1)
        procs.append(backend)
        wait_port(bport)
        targets = [("direct", bport, None)]
        # The proxies all run at once, each on CPU 0; only the one under test is busy.
        port = free_port()
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(NGINX_PROXY.format(dir=d, port=port, backend=bport))
        procs.append(start([nginx, "-c", f"{d}/nginx.conf", "-p", d], 0))
        targets.append(("nginx", port, procs[-1]))
        port = free_port()
        with open(f"{d}/haproxy.cfg", "w") as f:
            f.write(HAPROXY.format(port=port, backend=bport))
        procs.append(start([haproxy, "-f", f"{d}/haproxy.cfg"], 0))
        targets.append(("haproxy", port, procs[-1]))
        port = free_port()
        with open(f"{d}/mesh.yaml", "w") as f:
            f.write(mesh_config(port, bport, args.services))
        procs.append(start([mesh_proxy, "run", "--config", f"{d}/mesh.yaml", "--workers", "1", "--log-level", "warn",
                            "--admin", f"127.0.0.1:{free_port()}", "--health", f"127.0.0.1:{free_port()}",
                            "--metrics", f"127.0.0.1:{free_port()}"], 0))
        targets.append((f"mesh-proxy ({args.services} services)", port, procs[-1]))
        print(f"backend on {bport}; {args.rounds} rounds of {args.seconds:g}s per phase", file=sys.stderr)
        results = measure_all(targets, loadgen, args)
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(d, ignore_errors=True)

    by = {r["name"].split(" ")[0]: r for r in results}
    mp = by["mesh-proxy"]
    print()
    print(f"{'':28} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'CPU-ms/1k':>10} {'RSS idle':>9} {'RSS load':>9} {'max req/s':>10}")
    for r in results:
        print(f"{r['name']:28} {r['p50_ms']:8.3f} {r['p90_ms']:8.3f} {r['p99_ms']:8.3f} {r['cpu_ms_per_1k']:10.1f} "
              f"{r['rss_idle_mb']:8.1f}M {r['rss_mb']:8.1f}M {r['max_rps']:10.0f}")
    print()
    for peer in ("nginx", "haproxy"):
        o = by[peer]
        print(f"mesh-proxy / {peer}: max req/s {mp['max_rps'] / o['max_rps']:.2f}x, p99 {mp['p99_ms'] / o['p99_ms']:.2f}x, "
              f"CPU per 1k {mp['cpu_ms_per_1k'] / o['cpu_ms_per_1k']:.2f}x, RSS {mp['rss_mb'] / o['rss_mb']:.2f}x")
    print()
    print("the same, as the median of each round's own ratio (steadier on a shared machine):")
    for peer in ("nginx", "haproxy"):
        o = by[peer]
        print(f"mesh-proxy / {peer}: max req/s {round_ratio(mp, o, 'max_rps'):.2f}x, "
              f"p99 {round_ratio(mp, o, 'p99_ms'):.2f}x, CPU per 1k {round_ratio(mp, o, 'cpu_ms_per_1k'):.2f}x")
    print(f"the direct path / nginx: max req/s {round_ratio(by['direct'], by['nginx'], 'max_rps'):.2f}x "
          "(no proxy can beat the direct path: the backend and wrk share one core)")
    print()
    print(f"best of the rounds:          {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'CPU-ms/1k':>10} {'max req/s':>10}")
    for r in results:
        print(f"{r['name']:28} {r['best_p50_ms']:8.3f} {r['best_p90_ms']:8.3f} {r['best_p99_ms']:8.3f} "
              f"{r['best_cpu_ms_per_1k']:10.1f} {r['best_max_rps']:10.0f}")
    for peer in ("nginx", "haproxy"):
        o = by[peer]
        print(f"mesh-proxy / {peer} (best rounds): max req/s {mp['best_max_rps'] / o['best_max_rps']:.2f}x, "
              f"p99 {mp['best_p99_ms'] / o['best_p99_ms']:.2f}x, CPU per 1k {mp['best_cpu_ms_per_1k'] / o['best_cpu_ms_per_1k']:.2f}x")
    print()
    print("where the CPU goes (medians): share of it in the kernel at the fixed rate; the proxy's CPU")
    print("use in the closed loop (below 100%: the load generator's and backend's core was the limit)")
    for r in results[1:]:
        print(f"  {r['name']:28} kernel {r['kernel_share']:4.0%}   closed-loop CPU {r['busy_pct_closed_loop']:4.0f}%")
    print("targets: max req/s >= 1.1x nginx, p99 <= nginx, CPU per 1k <= 0.8x nginx, RSS < 10 MB")
    print("(RSS idle: started with the config, before any load; RSS load: after the rounds, with the")
    print(" 32 connections of the closed-loop runs still pooled)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

"""What the benchmarks share: timing a command with its peak RSS and CPU time, best of
several runs, and finding the binaries they compare."""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(cmd, ok_codes=(0,)):
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of one run, output
    discarded. CPU time is what other processes on a shared machine disturb least."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in ok_codes:
        sys.exit(f"{' '.join(cmd)} exited {code}: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def best(cmd, ok_codes=(0,), runs=3):
    """The best wall and CPU time and the highest RSS of `runs` runs."""
    results = [measure(cmd, ok_codes) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results), min(r[2] for r in results)


def default_meshctl():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/meshctl/target"))
    return os.path.join(target, "release/meshctl")


def cluster_kubectl():
    """The kubectl that e2e/cluster.sh builds."""
    bindir = subprocess.run([os.path.join(ROOT, "e2e/cluster.sh"), "bindir"],
                            capture_output=True, text=True).stdout.strip()
    return os.path.join(bindir, "kubectl")


def require(*tools):
    for tool in tools:
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: cargo build --release -p meshctl; e2e/cluster.sh build")


def arguments(default_sizes):
    """`--sizes`, `--meshctl`, `--kubectl`, with the binaries found and checked."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=default_sizes)
    parser.add_argument("--meshctl", default=default_meshctl())
    parser.add_argument("--kubectl", default=None)
    args = parser.parse_args()
    args.kubectl = args.kubectl or cluster_kubectl()
    require(args.meshctl, args.kubectl)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args

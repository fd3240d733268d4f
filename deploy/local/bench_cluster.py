"""The scale benchmark inside a running cluster (started by deploy/local/bench-cluster.sh).

1. Both aggregators are stopped, so ingest is measured with NATS, HAProxy and the load
   generator alone: first the bare-axum baseline (`loadgen --serve-baseline`, direct), then
   bursts alternate between 1 ingest (ingest-2 in maintenance on HAProxy's admin socket) and
   2 ingests, twice each (A B A B shows drift on a busy host). Each burst reports the cores
   each group of processes used meanwhile (from /proc), which shows where a 2-core box goes.
2. The bursts leave a backlog in the stream. Aggregators are started on it: 1, then 2, then
   back to 1, each for a window; the drain rate is the fall of the stream's message count
   (work-queue retention: an acked batch leaves the stream) over the window.
Standard library only; the load generator is target/release/loadgen.
"""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request

RUN = os.environ["CP_RUN_DIR"]
BIN = os.environ.get("CP_BIN_DIR", "target/release")
OFF = int(os.environ.get("CP_CLUSTER_PORT_OFFSET", "0"))
CONC = os.environ.get("BENCH_CONCURRENCY", "32")
DURATION = os.environ.get("BENCH_DURATION", "5")
WINDOW = float(os.environ.get("BENCH_DRAIN_WINDOW", "20"))
ENDPOINTS = dict(l.strip().split("=", 1) for l in open(os.path.join(RUN, "endpoints.env")) if "=" in l)
SECRETS = dict(l.strip().split("=", 1) for l in open(os.path.join(RUN, "secrets.env")) if "=" in l)


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def haproxy(command):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(RUN, "conf", "haproxy.sock"))
    s.sendall(command.encode() + b"\n")
    out = s.recv(4096)
    s.close()
    return out.decode().strip()


def stream_messages():
    """CP_EVENTS message count as its leader reports it."""
    for port in (8222 + OFF, 8223 + OFF, 8224 + OFF):
        try:
            name = get_json(f"http://127.0.0.1:{port}/varz")["server_name"]
            jsz = get_json(f"http://127.0.0.1:{port}/jsz?accounts=true&streams=true")
        except OSError:
            continue
        for acc in jsz.get("account_details", []):
            for s in acc.get("stream_detail", []):
                if s["name"] == "CP_EVENTS" and s.get("cluster", {}).get("leader") == name:
                    return s["state"]["messages"]
    raise RuntimeError("no leader of CP_EVENTS answers")


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(extra=()):
    """CPU time used so far by each process of the cluster, the load generator, and `extra`
    (name, Popen) pairs."""
    out = {}
    for name, proc in extra:
        try:
            out[name] = proc_cpu(proc.pid)
        except OSError:
            pass
    for f in os.listdir(os.path.join(RUN, "pids")):
        try:
            out[f[:-4]] = proc_cpu(int(open(os.path.join(RUN, "pids", f)).read()))
        except (OSError, ValueError):
            pass
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["loadgen"] = ru.ru_utime + ru.ru_stime
    return out


def cpu_share(before, after, seconds):
    """Cores used per group of processes between two cpu_seconds() readings."""
    groups = {}
    for name, t in after.items():
        group = re.sub(r"-\d$", "", name)
        groups[group] = groups.get(group, 0.0) + (t - before.get(name, t)) / seconds
    return "  ".join(f"{g} {c:.2f}" for g, c in sorted(groups.items(), key=lambda x: -x[1]) if c >= 0.01)


def burst(label, url=None):
    before, t0 = cpu_seconds(), time.time()
    out = subprocess.run(
        [os.path.join(BIN, "loadgen"), "--api", ENDPOINTS["API_URL"], "--ingest", url or ENDPOINTS["INGEST_URL"],
         "--concurrency", CONC, "--duration", DURATION, "--sites", "4", "--drain-wait", "0"],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"accepted (\d+) batches/s", out)
    lat = re.search(r"p50 ([\d.]+)\s+p90 [\d.]+\s+p99 ([\d.]+)", out)
    refused = re.search(r"refused by status: (.*)", out)
    rate = int(m.group(1))
    print(f"  {label:<12} {rate:>7,} batches/s   p50 {lat.group(1)} ms  p99 {lat.group(2)} ms   refused: {refused.group(1)}", flush=True)
    print(f"  {'':<12} cores used: {cpu_share(before, cpu_seconds(), time.time() - t0)}", flush=True)
    return rate


def aggregator(n):
    env = dict(os.environ)
    for k in [k for k in env if k.startswith("CP_NATS_") and k.endswith("_PASSWORD")]:
        del env[k]
    env.update({
        "NATS_URL": ",".join(f"nats://127.0.0.1:{4222 + OFF + i}" for i in range(3)),
        "NATS_USER": "aggregator", "NATS_PASSWORD": SECRETS["CP_NATS_AGGREGATOR_PASSWORD"], "CP_NATS_REPLICAS": "3",
        "MONGODB_URI": os.environ.get("MONGODB_URI", f"mongodb://127.0.0.1:{27017 + OFF}"),
        "CP_AGGREGATOR_ADDR": f"127.0.0.1:{8092 + OFF + n}", "CP_METRICS_ADDR": f"127.0.0.1:{9180 + OFF + 2 * n}",
        "RUST_LOG": "warn",
    })
    log = open(os.path.join(RUN, "logs", f"bench-aggregator-{n}.log"), "w")
    return subprocess.Popen([os.path.join(BIN, "aggregator")], env=env, stdout=log, stderr=log)


def drain(label, window, aggregators):
    time.sleep(3)  # connect, first pull, caches warm
    extra = [(f"bench-aggregator-{i}", p) for i, p in enumerate(aggregators)]
    start, t0, before = stream_messages(), time.time(), cpu_seconds(extra)
    time.sleep(window)
    end, t1 = stream_messages(), time.time()
    rate = (start - end) / (t1 - t0)
    print(f"  {label:<16} {rate:>7,.0f} batches/s   (backlog {start:,} -> {end:,} in {t1 - t0:.0f} s)", flush=True)
    print(f"  {'':<16} cores used: {cpu_share(before, cpu_seconds(extra), t1 - t0)}", flush=True)
    return rate


def main():
    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    for name in ("aggregator-1", "aggregator-2"):
        pid = int(open(os.path.join(RUN, "pids", f"{name}.pid")).read())
        os.kill(pid, signal.SIGTERM)
    time.sleep(2)
    base_port = 8095 + OFF
    base = subprocess.Popen([os.path.join(BIN, "loadgen"), "--serve-baseline", f"127.0.0.1:{base_port}"])
    time.sleep(1)
    print(f"ingest, {CONC} connections through HAProxy, {DURATION} s bursts, aggregators stopped:", flush=True)
    baseline = burst("baseline", f"http://127.0.0.1:{base_port}")
    base.terminate()
    base.wait()
    one, two = [], []
    for _ in range(2):
        haproxy("set server ingest/ingest-2 state maint")
        one.append(burst("1 ingest"))
        haproxy("set server ingest/ingest-2 state ready")
        time.sleep(1.5)  # the health check brings it back (rise 2 x 500 ms)
        two.append(burst("2 ingests"))
    backlog = stream_messages()
    print(f"backlog left in the stream: {backlog:,} batches", flush=True)
    print(f"drain of that backlog into the MongoDB-wire server ({WINDOW:.0f} s windows):", flush=True)
    a = aggregator(1)
    d1 = drain("1 aggregator", WINDOW, [a])
    b = aggregator(2)
    d2 = drain("2 aggregators", WINDOW, [a, b])
    b.send_signal(signal.SIGTERM)
    b.wait()
    d3 = drain("1 aggregator again", WINDOW, [a])
    a.send_signal(signal.SIGTERM)
    a.wait()
    print(f"ratios (same run): 2 ingests / 1 ingest = {sum(two) / sum(one):.2f}; "
          f"1 ingest / bare-axum baseline (direct, no balancer) = {sum(one) / 2 / baseline:.2f}; "
          f"2 aggregators / 1 aggregator = {d2 / ((d1 + d3) / 2):.2f}; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())

"""Runs a real Prometheus against a running `make cluster` and proves that every alert and
every dashboard query evaluates, on the metrics the services really export.

Started by deploy/check/check-deploy.sh through cluster.sh's CP_AFTER_START, so CP_RUN_DIR
names the cluster's run directory (metrics-targets, endpoints.env). Standard library only.

Checks, each failing the run:
1. Prometheus scrapes every service (up == 1 for each target).
2. After traffic through the balancer (accepted and refused batches), every rule of
   deploy/prometheus/alerts.yml has been evaluated with health "ok" (no evaluation error).
3. Every alert expression and every Grafana panel query returns "success" from /api/v1/query.
4. Every convertpulse_* metric those expressions name exists in the scraped data (a renamed
   metric would leave an alert that evaluates fine and never fires).
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUN = os.environ["CP_RUN_DIR"]
OFFSET = int(os.environ.get("CP_CLUSTER_PORT_OFFSET", "0"))
PROM = f"http://127.0.0.1:{9090 + OFFSET}"


BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"


def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def prom(path, **params):
    status, body = http("GET", f"{PROM}{path}?{urllib.parse.urlencode(params)}")
    return json.loads(body) if body else {"status": f"http {status}"}


def wait(what, check, limit=90):
    deadline = time.time() + limit
    while time.time() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    sys.exit(f"FAIL timed out after {limit} s waiting for {what}")


def targets():
    jobs = {}
    with open(os.path.join(RUN, "metrics-targets")) as f:
        for line in f:
            name, addr = line.strip().split("=", 1)
            job = "haproxy" if name == "balancer" else "convertpulse-" + name.split("-")[0]
            jobs.setdefault(job, []).append(addr)
    return jobs


def traffic():
    env = dict(l.strip().split("=", 1) for l in open(os.path.join(RUN, "endpoints.env")) if "=" in l)
    api, ingest = env["API_URL"], env["INGEST_URL"]
    creds = json.dumps({"email": "demo@convertpulse.dev", "password": os.environ.get("CP_DEMO_PASSWORD", "convertpulse-demo")}).encode()
    status, body = http("POST", f"{api}/api/auth/login", creds, {"content-type": "application/json"})
    assert status == 200, f"demo login: {status} {body[:200]}"
    token = json.loads(body)["token"]
    status, body = http("GET", f"{api}/api/sites", headers={"authorization": f"Bearer {token}"})
    key = json.loads(body)[0]["api_key"]
    sent = {}
    for i in range(40):
        page = f"page_check_{os.getpid()}_{i}"
        event = {"type": "pageview", "ts": int(time.time() * 1000), "page_id": page, "url": "http://localhost/check",
                 "referrer": "", "title": "check", "new_session": True}
        batch = {"key": key if i % 10 else "cp_not_a_key_at_all_0000000000000", "batch_id": f"check_{os.getpid()}_{i}",
                 "session_id": f"session_check_{os.getpid()}", "events": [event]}
        # A browser's User-Agent: ingest answers bots (python-urllib is one) 202 and drops them.
        status, _ = http("POST", f"{ingest}/api/events/batch", json.dumps(batch).encode(), {"content-type": "text/plain", "user-agent": BROWSER_UA})
        sent[status] = sent.get(status, 0) + 1
    print(f"traffic: {sent}")


def main():
    jobs = targets()
    pdir = os.path.join(RUN, "prometheus")
    os.makedirs(pdir, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": addrs}]} for job, addrs in jobs.items()],
    }
    with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
        json.dump(config, f)  # JSON is YAML
    log = open(os.path.join(pdir, "prometheus.log"), "w")
    proc = subprocess.Popen(["prometheus", f"--config.file={pdir}/prometheus.yml", f"--storage.tsdb.path={pdir}/data",
                             f"--web.listen-address=127.0.0.1:{9090 + OFFSET}"], stdout=log, stderr=log)
    failures = []
    try:
        n_targets = sum(len(a) for a in jobs.values())
        wait("Prometheus to scrape every target", lambda: (
            r := prom("/api/v1/query", query="count(up == 1)")).get("status") == "success"
            and r["data"]["result"] and int(r["data"]["result"][0]["value"][1]) == n_targets)
        print(f"ok   Prometheus scrapes all {n_targets} targets: {', '.join(sorted(jobs))}")
        traffic()
        wait("the aggregators to process the traffic", lambda: (
            r := prom("/api/v1/query", query="sum(convertpulse_aggregator_messages_total)")).get("status") == "success"
            and r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) > 0)
        # Rules evaluate every second; wait until each has been evaluated after the traffic.
        started = time.time()
        time.sleep(3)

        def evaluated():
            groups = prom("/api/v1/rules").get("data", {}).get("groups", [])
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

        rules = wait("every rule to be evaluated", evaluated)
        for r in rules:
            if r.get("health") != "ok":
                failures.append(f"rule {r['name']}: health {r.get('health')}: {r.get('lastError')}")
            else:
                print(f"ok   rule {r['name']} evaluates (state {r.get('state')})")
        exprs = {f"alert {r['name']}": r["query"] for r in rules}
        with open(os.path.join(ROOT, "deploy", "grafana", "convertpulse.json")) as f:
            dash = json.load(f)
        for p in dash["panels"]:
            for t in p.get("targets", []):
                exprs[f"panel {p['title']!r} {t['refId']}"] = t["expr"].replace("$__rate_interval", "1m")
        names = set(prom("/api/v1/label/__name__/values")["data"])
        for what, expr in exprs.items():
            r = prom("/api/v1/query", query=expr)
            if r.get("status") != "success":
                failures.append(f"{what}: {r.get('error', r.get('status'))}")
                continue
            missing = sorted(set(re.findall(r"\bconvertpulse_[a-z_]+", expr)) - names)
            if missing:
                failures.append(f"{what}: no such metric scraped: {', '.join(missing)}")
            else:
                print(f"ok   {what}")
        print(f"{len(rules)} rules and {len(exprs) - len(rules)} panel queries checked in {time.time() - started:.0f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Checks who may talk to whom in deploy/k8s/, and that the links between pods are encrypted.

1. Egress is denied by default in the namespace (a policy selecting every pod, with Egress and
   no rule), and every pod may reach the cluster DNS on port 53, nothing more, through a
   policy that selects every pod.
2. Every workload (Deployment, StatefulSet, Job, ...) is selected by a policy of its own with
   Egress, and the peers and ports its policies let it reach are exactly those in EGRESS below:
   a new workload, a new peer or a rule open to anywhere (no `to`, an ipBlock, a namespace
   selector) fails until this table says so. A rule whose peers are only ipBlocks (addresses
   outside the cluster) counts as the peer "outside", on its ports: only the api has such a
   row, for its SMTP server.
3. Who may reach NATS and MongoDB (INGRESS below) is exactly what their policies admit.
4. TLS: the NATS config has TLS for clients and for routes (with verify), the services connect
   with tls:// URLs and NATS_TLS_CA, mongod runs with --tlsMode=requireTLS, the setup Job
   connects with --tls, and the MongoDB URI in README.md asks for TLS with the CA the services
   mount.

Run with the interpreter of the venv that deps.sh made: .venv-deploy/k8s/bin/python.
Usage: k8s_network.py [repository root]; exits 1 on a problem.
"""

import glob
import os
import re
import sys

import yaml

# app label -> the (peer app label, port) pairs it may open connections to, besides DNS.
EGRESS = {
    "ingest": {("nats", 4222)},
    "aggregator": {("nats", 4222), ("mongo", 27017)},
    # And the SMTP server of CP_SMTP_URL (docs/mail.md), on the SMTP ports only.
    "api": {("nats", 4222), ("mongo", 27017), ("outside", 25), ("outside", 465), ("outside", 587)},
    "nats": {("nats", 6222)},
    "mongo": {("mongo", 27017)},
    "mongo-init": {("mongo", 27017)},
}
# (app label, port) -> the app labels in this namespace admitted to it.
INGRESS = {
    ("nats", 4222): {"ingest", "aggregator", "api"},
    ("nats", 6222): {"nats"},
    ("mongo", 27017): {"aggregator", "api", "mongo", "mongo-init"},
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def pod_template(doc):
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def selects(selector, labels):
    """Does a label selector (matchLabels, matchExpressions with In/NotIn/Exists) match?"""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_apps(peers, apps):
    """The app labels a list of `to`/`from` peers covers in this namespace, or None when a peer
    reaches beyond the namespace's pods (ipBlock, namespaceSelector, or no peers at all)."""
    if not peers:
        return None
    covered = set()
    for peer in peers:
        if "ipBlock" in peer or "namespaceSelector" in peer or "podSelector" not in peer:
            return None
        covered |= {app for app in apps if selects(peer["podSelector"], {"app": app})}
    return covered


def ports_of(rule):
    return [p.get("port") for p in rule.get("ports") or []] or [None]


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    docs = []
    for path in sorted(glob.glob(os.path.join(root, "deploy", "k8s", "*.yaml"))):
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    workloads = {pod_template(d)["metadata"]["labels"]["app"]: d for d in docs if d["kind"] in WORKLOADS}
    apps = set(workloads) | set(EGRESS)
    errors = []

    # 1. Default deny, and DNS for everyone.
    everyone = [p for p in policies if not p["spec"]["podSelector"]]
    if not any("Egress" in p["spec"].get("policyTypes", []) and not p["spec"].get("egress") for p in everyone):
        errors.append("no default-deny egress policy (podSelector {}, policyTypes [Egress], no rules)")
    dns = [r for p in everyone for r in p["spec"].get("egress") or []]
    for rule in dns:
        to = rule.get("to") or []
        if set(ports_of(rule)) != {53} or not to or any(
            (t.get("namespaceSelector", {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name") != "kube-system"
            for t in to
        ):
            errors.append(f"a policy for every pod lets out more than DNS in kube-system: {rule}")
    if not dns:
        errors.append("no policy lets pods reach the cluster DNS")

    # 2. Each workload's egress is exactly its row of EGRESS.
    for app in sorted(apps):
        if app not in workloads:
            errors.append(f"EGRESS names {app}, which no workload is")
            continue
        if app not in EGRESS:
            errors.append(f"workload {app} has no row in EGRESS (deploy/check/k8s_network.py): say what it may reach")
            continue
        labels = pod_template(workloads[app])["metadata"]["labels"]
        own = [
            p for p in policies
            if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels) and "Egress" in p["spec"].get("policyTypes", [])
        ]
        if not own:
            errors.append(f"workload {app}: no egress policy of its own")
            continue
        allowed = set()
        for p in own:
            for rule in p["spec"].get("egress") or []:
                to = rule.get("to") or []
                if to and all(set(t) == {"ipBlock"} for t in to):
                    # A rule without ports gives (outside, None), which no row allows.
                    allowed |= {("outside", port) for port in ports_of(rule)}
                    continue
                peers = peer_apps(rule.get("to"), apps)
                if peers is None:
                    errors.append(f"workload {app}: policy {p['metadata']['name']} lets it out beyond the namespace's pods: {rule}")
                    continue
                allowed |= {(peer, port) for peer in peers for port in ports_of(rule)}
        if allowed != EGRESS[app]:
            errors.append(f"workload {app} may reach {sorted(allowed, key=str)}, want {sorted(EGRESS[app])}")

    # 3. Who may reach NATS and MongoDB.
    for (app, port), want in sorted(INGRESS.items()):
        labels = pod_template(workloads[app])["metadata"]["labels"] if app in workloads else {"app": app}
        admitted = set()
        for p in policies:
            if not selects(p["spec"]["podSelector"], labels) or "Ingress" not in p["spec"].get("policyTypes", []):
                continue
            for rule in p["spec"].get("ingress") or []:
                if port not in ports_of(rule) and ports_of(rule) != [None]:
                    continue
                peers = peer_apps(rule.get("from"), apps)
                if peers is None:
                    errors.append(f"{app}:{port} admits more than the namespace's pods: {rule}")
                    continue
                admitted |= peers
        if admitted != want:
            errors.append(f"{app}:{port} admits {sorted(admitted)}, want {sorted(want)}")

    # 4. TLS between the pods.
    nats_conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nats-config")["data"]["nats.conf"]
    top = re.sub(r"cluster\s*\{.*", "", nats_conf, flags=re.S)
    cluster = re.search(r"cluster\s*\{(.*)", nats_conf, flags=re.S)
    if not re.search(r"^\s*tls\s*\{", top, flags=re.M):
        errors.append("nats.conf: no tls block for clients")
    if not cluster or not re.search(r"tls\s*\{[^}]*verify:\s*true", cluster.group(1)):
        errors.append("nats.conf: routes (cluster block) without tls { ... verify: true }")
    app_config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "convertpulse")["data"]
    urls = app_config.get("NATS_URL", "").split(",")
    if not all(u.startswith("tls://") for u in urls):
        errors.append(f"NATS_URL has a URL without tls://: {app_config.get('NATS_URL')}")
    mounts = {}
    for app in ("ingest", "aggregator", "api"):
        container = pod_template(workloads[app])["spec"]["containers"][0]
        mounts[app] = [m["mountPath"] for m in container.get("volumeMounts", [])]
    ca = app_config.get("NATS_TLS_CA", "")
    for app, paths in mounts.items():
        if not ca or not any(ca.startswith(p.rstrip("/") + "/") for p in paths):
            errors.append(f"{app}: NATS_TLS_CA {ca!r} is not in a mounted volume")
    mongod = [c for c in pod_template(workloads["mongo"])["spec"]["containers"] if c["name"] == "mongo"][0]
    if "--tlsMode=requireTLS" not in mongod.get("args", []):
        errors.append("mongod does not run with --tlsMode=requireTLS")
    init = pod_template(workloads["mongo-init"])["spec"]["containers"][0]
    if "--tls" not in init.get("command", []):
        errors.append("mongo-init connects without --tls")
    with open(os.path.join(root, "deploy", "k8s", "README.md")) as f:
        readme = f.read()
    uri = re.search(r"mongodb-uri=\"(mongodb://[^\"]+)\"", readme)
    if not uri or "tls=true" not in uri.group(1) or "tlsCAFile=/etc/convertpulse/tls/mongo-ca.crt" not in uri.group(1):
        errors.append("deploy/k8s/README.md: the mongodb-uri it tells operators to create lacks tls=true&tlsCAFile=/etc/convertpulse/tls/mongo-ca.crt")

    for e in errors:
        print(f"FAIL {e}")
    if not errors:
        print(f"ok   network: default-deny egress, DNS, {len(EGRESS)} workloads each reach only their peers; NATS and MongoDB over TLS")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

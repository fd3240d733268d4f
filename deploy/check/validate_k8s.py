"""Validates every manifest in deploy/k8s/ offline: built-in kinds against the Kubernetes
schemas shipped with kubernetes-validate (strict: unknown fields are errors), custom resources
(KEDA's ScaledObject) against our own schemas in deploy/k8s/schemas/, and cross-checks that the
manifests agree with the rest of the repository (NATS users, stream and consumer names).

Run with the interpreter of the venv that deps.sh made: .venv-deploy/k8s/bin/python.
"""

import glob
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
# The oldest and the newest Kubernetes the manifests are meant for.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.keda.sh-v1alpha1.json"}


def fail(msg):
    print(f"FAIL {msg}")
    return 1


def main():
    errors = 0
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((os.path.relpath(path, ROOT), doc))
    for path, doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        name = f"{path} {kind}/{doc.get('metadata', {}).get('name')}"
        if (api, kind) in CUSTOM:
            with open(os.path.join(K8S, "schemas", CUSTOM[(api, kind)])) as f:
                schema = yaml.safe_load(f)
            try:
                jsonschema.validate(doc, schema)
                print(f"ok   {name} (own schema)")
            except jsonschema.ValidationError as e:
                errors += fail(f"{name}: {e.message} at {'/'.join(map(str, e.absolute_path))}")
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                errors += fail(f"{name} (Kubernetes {version}): {e.message} at {'/'.join(map(str, e.path))}")
                break
            except kubernetes_validate.SchemaNotFoundError:
                errors += fail(f"{name}: no schema for {api} {kind}; add one to deploy/k8s/schemas/")
                break
        else:
            print(f"ok   {name} (Kubernetes {', '.join(VERSIONS)})")

    # The NATS users in the cluster are exactly those of deploy/nats/accounts.conf.
    with open(os.path.join(ROOT, "deploy", "nats", "accounts.conf")) as f:
        accounts = f.read()
    nats_cm = [d for _, d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "nats-config"]
    if not nats_cm or nats_cm[0]["data"]["accounts.conf"].strip() != accounts.strip():
        errors += fail("deploy/k8s/10-nats.yaml: accounts.conf differs from deploy/nats/accounts.conf")
    else:
        print("ok   nats-config accounts.conf is deploy/nats/accounts.conf")
    # KEDA watches the stream and consumer the code uses (shared/src/names.rs).
    with open(os.path.join(ROOT, "shared", "src", "names.rs")) as f:
        names = f.read()
    for _, d in docs:
        if d.get("kind") == "ScaledObject":
            for t in d["spec"]["triggers"]:
                m = t["metadata"]
                for key, want in (("stream", "CP_EVENTS"), ("consumer", "cp-aggregator")):
                    if m.get(key) != want or f'"{want}"' not in names:
                        errors += fail(f"ScaledObject {key} {m.get(key)!r} is not the code's {want!r}")
    # Every Deployment and StatefulSet container has probes and resource requests and limits.
    for path, d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                missing = [k for k in ("readinessProbe", "livenessProbe") if k not in c]
                res = c.get("resources", {})
                if "requests" not in res or "limits" not in res:
                    missing.append("resources.requests/limits")
                if missing:
                    errors += fail(f"{path} {d['kind']}/{d['metadata']['name']} container {c['name']}: missing {', '.join(missing)}")
    kinds = {d.get("kind") for _, d in docs}
    for needed in ("PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler", "ScaledObject", "StatefulSet"):
        if needed not in kinds:
            errors += fail(f"no {needed} in deploy/k8s/")
    print(f"{len(docs)} manifests checked, {errors} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

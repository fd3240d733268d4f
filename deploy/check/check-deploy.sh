#!/usr/bin/env bash
# `make check-deploy` (and so `make test`): validates what operators deploy, offline, then
# proves the alerts against a live cluster.
#   1. deploy/k8s/*.yaml against the Kubernetes schemas (kubernetes-validate, strict) and our
#      own schema for KEDA's ScaledObject (deploy/check/validate_k8s.py); the network:
#      default-deny egress, each workload's peers exactly, TLS for NATS and MongoDB
#      (deploy/check/k8s_network.py)
#   2. deploy/compose.yaml (docker-compose config; no engine needed)
#   3. Prometheus rules and config (promtool check rules / test rules / check config)
#   4. the NATS server configs (nats-server -t; the Kubernetes one with a throwaway certificate
#      in place of the Secret nats-tls)
#   5. the image's inputs: .dockerignore keeps .run/ (secrets) and target/ out of the build
#      context (deploy/check/docker_context.py); every cargo build of the image and of CI
#      (Dockerfile, Makefile, .ci/run) carries --locked; every image the Dockerfile, compose and
#      Kubernetes name is an exact version (deploy/check/image_refs.py); every pip install of
#      deploy/local/deps.sh is --require-hashes, from deploy/requirements/ files whose every
#      package has an exact pin and a sha256
#   6. generated secrets are mode 600: deploy/local/secret.sh (the JWT secret of `make run`)
#      run against a temporary folder under umask 000, new and pre-existing files
#   7. unless CP_CHECK_STATIC_ONLY=1: `make cluster` on other ports with a real Prometheus
#      scraping it; every alert and dashboard query must evaluate (deploy/check/live_alerts.py)
# Tools come from deploy/local/deps.sh --deploy-checks (.venv-deploy/, Debian's prometheus).
set -euo pipefail
cd "$(dirname "$0")/../.."
V=.venv-deploy

echo "==> Kubernetes manifests"
"$V/k8s/bin/python" deploy/check/validate_k8s.py | tail -n 3
"$V/k8s/bin/python" deploy/check/k8s_network.py

echo "==> compose file"
# Every secret the file requires, with dummy values: this checks the file, not the secrets.
dummy=(CP_JWT_SECRET=x CP_NATS_INGEST_PASSWORD=x CP_NATS_AGGREGATOR_PASSWORD=x CP_NATS_API_PASSWORD=x
  CP_NATS_ADMIN_PASSWORD=x CP_MONGO_ROOT_PASSWORD=x CP_MONGO_APP_PASSWORD=x)
env "${dummy[@]}" "$V/compose/bin/docker-compose" -f deploy/compose.yaml config -q
echo "ok   deploy/compose.yaml"

echo "==> Prometheus rules"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
promtool check config deploy/prometheus/prometheus.yml >/dev/null && echo "ok   deploy/prometheus/prometheus.yml"

echo "==> NATS configs"
tmp=$(mktemp -d)
# Kept when something failed, with the cluster's logs.
trap 'status=$?; if [ "$status" = 0 ]; then rm -rf "$tmp"; else echo "!! files kept in $tmp" >&2; fi' EXIT
nats_env=(POD_NAME=nats-0 CP_NATS_INGEST_PASSWORD=a CP_NATS_AGGREGATOR_PASSWORD=b CP_NATS_API_PASSWORD=c CP_NATS_ADMIN_PASSWORD=d)
cp deploy/nats/compose.conf deploy/nats/accounts.conf "$tmp/"
env "${nats_env[@]}" nats-server -t -c "$tmp/compose.conf"
mkdir -p "$tmp/k8s/tls"
# The Kubernetes config loads its certificate (Secret nats-tls, mounted at /etc/nats-tls): give
# it a throwaway CA and server certificate in the same files, so -t checks the TLS blocks too.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=check-ca -keyout "$tmp/k8s/tls/ca.key" \
  -out "$tmp/k8s/tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=nats -keyout "$tmp/k8s/tls/tls.key" -out "$tmp/k8s/tls/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:*.nats-headless.convertpulse.svc.cluster.local\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tmp/k8s/tls/ext"
openssl x509 -req -in "$tmp/k8s/tls/tls.csr" -CA "$tmp/k8s/tls/ca.crt" -CAkey "$tmp/k8s/tls/ca.key" -CAcreateserial \
  -days 1 -extfile "$tmp/k8s/tls/ext" -out "$tmp/k8s/tls/tls.crt" 2>/dev/null
"$V/k8s/bin/python" -c '
import sys, yaml
cm = [d for d in yaml.safe_load_all(open("deploy/k8s/10-nats.yaml")) if d and d["kind"] == "ConfigMap"][0]
for name, text in cm["data"].items():
    open(f"{sys.argv[1]}/{name}", "w").write(text.replace("/etc/nats-tls/", f"{sys.argv[1]}/tls/"))
' "$tmp/k8s"
env "${nats_env[@]}" NATS_CLUSTER_ADVERTISE=nats-0.nats-headless.convertpulse.svc.cluster.local:6222 \
  nats-server -t -c "$tmp/k8s/nats.conf"

echo "==> image build inputs"
python3 deploy/check/docker_context.py
# The image and CI build from Cargo.lock exactly: a cargo command that builds must say --locked.
grep -q 'cargo build' deploy/Dockerfile || { echo "FAIL deploy/Dockerfile builds nothing with cargo?" >&2; exit 1; }
unlocked=$(grep -nE 'cargo +(build|test|run|install|nextest +run)( |$)' deploy/Dockerfile Makefile .ci/run | grep -v -- '--locked' || true)
if [ -n "$unlocked" ]; then echo "FAIL cargo without --locked:"$'\n'"$unlocked" >&2; exit 1; fi
echo "ok   every cargo build in deploy/Dockerfile, Makefile and .ci/run is --locked"
python3 deploy/check/image_refs.py
# PyPI installs are hash-checked: every pip install in deps.sh (directly or through its pip_in
# helper) says --require-hashes, and every pinned package in the files it reads has a sha256.
pip_calls=$(grep -nE 'pip3?"? +install|(^|[^_[:alnum:]])pip_in +[^(]' deploy/local/deps.sh | grep -v 'pip_in() {' || true)
[ -n "$pip_calls" ] || { echo "FAIL no pip install found in deploy/local/deps.sh?" >&2; exit 1; }
unhashed=$(grep -v -- '--require-hashes' <<<"$pip_calls" || true)
if [ -n "$unhashed" ]; then echo "FAIL pip install without --require-hashes:"$'\n'"$unhashed" >&2; exit 1; fi
python3 - deploy/requirements/*.txt <<'PY'
import re, sys
bad = []
for path in sys.argv[1:]:
    text = open(path).read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and not (re.match(r"^[A-Za-z0-9._-]+==\S+ ", line) and "--hash=sha256:" in line):
            bad.append(f"{path}: {line.split()[0]}")
if bad:
    sys.exit("FAIL not pinned with a sha256:\n" + "\n".join(bad))
print(f"ok   every pip install in deploy/local/deps.sh is --require-hashes ({len(sys.argv) - 1} requirement files, all hashed)")
PY

echo "==> generated secrets"
# deploy/local/run.sh keeps its JWT secret through secret.sh; whatever the umask, new files and
# files left readable by others end up readable by their owner only.
mode_is_600() { [ "$(stat -c %a "$1")" = 600 ] || { echo "FAIL $2: mode $(stat -c %a "$1"), want 600" >&2; exit 1; }; }
grep -q 'deploy/local/secret.sh "$RUN_DIR/jwt_secret"' deploy/local/run.sh \
  || { echo "FAIL deploy/local/run.sh does not make its JWT secret with deploy/local/secret.sh" >&2; exit 1; }
mkdir "$tmp/secrets"
made=$(umask 000; deploy/local/secret.sh "$tmp/secrets/new")
[ "${#made}" -ge 32 ] || { echo "FAIL secret.sh printed ${#made} characters" >&2; exit 1; }
[ "$(deploy/local/secret.sh "$tmp/secrets/new")" = "$made" ] || { echo "FAIL secret.sh changed a kept secret" >&2; exit 1; }
mode_is_600 "$tmp/secrets/new" "a new secret"
(umask 000; echo old-secret >"$tmp/secrets/old")
[ "$(deploy/local/secret.sh "$tmp/secrets/old")" = old-secret ] || { echo "FAIL secret.sh replaced an existing secret" >&2; exit 1; }
mode_is_600 "$tmp/secrets/old" "a secret made world-readable before"
echo "ok   deploy/local/secret.sh makes and keeps secrets with mode 600"

if [ "${CP_CHECK_STATIC_ONLY:-}" = 1 ]; then exit 0; fi
echo "==> alerts against a live cluster"
export CP_BIN_DIR=${CP_BIN_DIR:-target/debug}
export CP_BCRYPT_COST=4 RUST_LOG=warn
export CP_AFTER_START="python3 deploy/check/live_alerts.py"
# Another stack on this machine may hold a port: try the next range (status 3 = the cluster
# did not come up; any other failure is the check's own).
for offset in ${CP_CHECK_PORT_OFFSET:-2000 2500 3500}; do
  export CP_CLUSTER_PORT_OFFSET=$offset CP_RUN_DIR="$tmp/cluster-$offset"
  set +e
  deploy/local/cluster.sh
  status=$?
  set -e
  if [ "$status" = 0 ]; then mode_is_600 "$CP_RUN_DIR/secrets.env" "the cluster's secrets.env"; fi
  [ "$status" = 3 ] || exit "$status"
  echo "!! the cluster did not come up with port offset $offset; trying another" >&2
done
exit 1

#!/usr/bin/env bash
# Installs what running and testing ConvertPulse needs and is missing:
#   nats-server            Debian package (JetStream via -js)
#   nx-27017               MongoDB-wire server, in ./.venv (skipped when MONGODB_URI is set)
#                          (every PyPI package below too: exact pins with sha256 hashes from
#                          deploy/requirements/, installed with pip --require-hashes)
#   chromium, firefox-esr, Debian packages (only with --browser or --test): the browser tests drive
#   webkit2gtk-driver,     Chromium with playwright-core, Firefox with puppeteer-core, and
#   xvfb                   WebKitGTK's MiniBrowser over WebDriver in a private Xvfb
#   wrk, linux-perf        Debian packages (only with --bench: the load client and profiler)
#   schemathesis           PyPI, in ./.venv-schemathesis (only with --test): checks
#                          docs/openapi.yaml against a running stack
#   aiosmtpd               PyPI, in ./.venv-smtp (only with --test): the real SMTP server the
#                          mail tests send to (tests/smtp/sink.py)
#   front-end packages     npm ci at the root: tracker minifier, Chart.js, browser driver
#   IP-to-country database npm ci in deploy/geoip (@ip-location-db/geo-whois-asn-country-mmdb,
#                          CC0-1.0 with NRO data under CC BY 4.0; ingest reads it via CP_GEOIP_DB)
#   haproxy                Debian package, the balancer of `make cluster` (with --cluster)
#   deploy checks          (with --deploy-checks) Debian's prometheus (promtool) and, in
#                          .venv-deploy/, kubernetes-validate and docker-compose (v1, from PyPI:
#                          `docker-compose config` needs no Docker engine)
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/../.."

want_browser=0 want_bench=0 want_schemathesis=0 want_cluster=0 want_checks=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --test) want_browser=1; want_schemathesis=1 ;;
    --bench) want_bench=1 ;;
    --cluster) want_cluster=1 ;;
    --deploy-checks) want_checks=1 ;;
    *) echo "usage: $0 [--browser | --test] [--bench] [--cluster] [--deploy-checks]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_packages=()
command -v nats-server >/dev/null 2>&1 || apt_packages+=(nats-server)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ "$want_browser" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  command -v firefox-esr >/dev/null 2>&1 || apt_packages+=(firefox-esr)
  command -v WebKitWebDriver >/dev/null 2>&1 || apt_packages+=(webkit2gtk-driver)
  command -v Xvfb >/dev/null 2>&1 || apt_packages+=(xvfb)
fi
if [ "$want_bench" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || apt_packages+=(wrk)
  command -v perf >/dev/null 2>&1 || apt_packages+=(linux-perf)
fi
if [ "$want_cluster" = 1 ]; then
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || apt_packages+=(haproxy)
  command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
fi
if [ "$want_checks" = 1 ]; then
  command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "==> installing ${apt_packages[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # The packages enable system services; the project runs its own instances only.
  for svc in haproxy prometheus; do
    if [[ " ${apt_packages[*]} " == *" $svc "* ]] && command -v systemctl >/dev/null 2>&1; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

# PyPI packages: each venv from hash-checked exact pins (deploy/requirements/), made again when
# its requirements changed since (the venv keeps a copy of what it was made from).
R=deploy/requirements
venv_current() { # venv, command it must have, requirement files...
  local venv=$1 cmd=$2; shift 2
  [ -x "$venv/bin/$cmd" ] && cat "$@" | cmp -s - "$venv/.cp-requirements"
}
venv_done() { local venv=$1; shift; cat "$@" >"$venv/.cp-requirements"; }
pip_in() { local venv=$1; shift; "$venv/bin/pip" install -q --disable-pip-version-check "$@"; }

if [ "$want_checks" = 1 ]; then
  if ! venv_current .venv-deploy/k8s kubernetes-validate "$R/kubernetes-validate.txt"; then
    echo "==> installing kubernetes-validate into .venv-deploy/k8s"
    python3 -m venv --clear .venv-deploy/k8s
    pip_in .venv-deploy/k8s --require-hashes -r "$R/kubernetes-validate.txt"
    venv_done .venv-deploy/k8s "$R/kubernetes-validate.txt"
  fi
  if ! venv_current .venv-deploy/compose docker-compose "$R/compose-build.txt" "$R/docker-compose.txt"; then
    echo "==> installing docker-compose (v1) into .venv-deploy/compose"
    python3 -m venv --clear .venv-deploy/compose
    # docker-compose 1.29 wants PyYAML 5, which has no wheel for current Pythons and does not
    # build with Cython 3: build it without isolation against Cython 0.29 (also hash-checked).
    pip_in .venv-deploy/compose --require-hashes -r "$R/compose-build.txt"
    pip_in .venv-deploy/compose --require-hashes --no-build-isolation -r "$R/docker-compose.txt"
    venv_done .venv-deploy/compose "$R/compose-build.txt" "$R/docker-compose.txt"
  fi
fi

if [ -z "${MONGODB_URI:-}" ] && ! venv_current .venv nx-27017 "$R/nx-27017.txt"; then
  echo "==> installing nx-27017 (MongoDB-wire server) into .venv"
  python3 -m venv --clear .venv
  pip_in .venv --require-hashes -r "$R/nx-27017.txt"
  venv_done .venv "$R/nx-27017.txt"
fi

if [ "$want_schemathesis" = 1 ] && ! venv_current .venv-schemathesis schemathesis "$R/schemathesis.txt"; then
  echo "==> installing schemathesis into .venv-schemathesis"
  python3 -m venv --clear .venv-schemathesis
  pip_in .venv-schemathesis --require-hashes -r "$R/schemathesis.txt"
  venv_done .venv-schemathesis "$R/schemathesis.txt"
fi

if [ "$want_schemathesis" = 1 ] && ! venv_current .venv-smtp aiosmtpd "$R/aiosmtpd.txt"; then
  echo "==> installing aiosmtpd (the mail tests' SMTP server) into .venv-smtp"
  python3 -m venv --clear .venv-smtp
  pip_in .venv-smtp --require-hashes -r "$R/aiosmtpd.txt"
  venv_done .venv-smtp "$R/aiosmtpd.txt"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "==> installing front-end packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Kept apart from the front-end packages: a data package updated on its own schedule.
if [ ! -d deploy/geoip/node_modules ] || [ deploy/geoip/package-lock.json -nt deploy/geoip/node_modules ]; then
  echo "==> installing the IP-to-country database (npm ci in deploy/geoip)"
  npm ci --prefix deploy/geoip --no-audit --no-fund --loglevel=error
fi
exit 0

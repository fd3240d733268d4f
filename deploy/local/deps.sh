#!/usr/bin/env bash
# Installs what running and testing ConvertPulse needs and is missing:
#   nats-server            Debian package (JetStream via -js)
#   nx-27017               MongoDB-wire server, in ./.venv (skipped when MONGODB_URI is set)
#   chromium, chromedriver Debian packages (only with --browser or --test)
#   schemathesis           PyPI, in ./.venv-schemathesis (only with --test): checks
#                          docs/openapi.yaml against a running stack
#   front-end packages     npm ci at the root: tracker minifier, Chart.js, browser driver
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/../.."

want_browser=0
want_schemathesis=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --test) want_browser=1; want_schemathesis=1 ;;
    *) echo "usage: $0 [--browser | --test]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_packages=()
command -v nats-server >/dev/null 2>&1 || apt_packages+=(nats-server)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ "$want_browser" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "==> installing ${apt_packages[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ -z "${MONGODB_URI:-}" ] && [ ! -x .venv/bin/nx-27017 ]; then
  echo "==> installing nx-27017 (MongoDB-wire server) into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "nx-27017==0.8.1"
fi

SCHEMATHESIS_VERSION=4.32.5
if [ "$want_schemathesis" = 1 ] && ! .venv-schemathesis/bin/schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION into .venv-schemathesis"
  python3 -m venv .venv-schemathesis
  .venv-schemathesis/bin/pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "==> installing front-end packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
exit 0

#!/usr/bin/env bash
# Prints the secret kept in FILE, making a random one first when FILE is missing or empty.
# The file is readable by its owner only (mode 600), whatever the caller's umask; a file left
# readable by others (made before this script) is tightened. `make run` keeps its JWT secret
# this way (deploy/local/run.sh); `make check-deploy` checks the modes.
#   deploy/local/secret.sh .run/jwt_secret
set -euo pipefail
file=${1:?usage: $0 FILE}
umask 077
if [ ! -s "$file" ]; then
  python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$file.tmp"
  mv "$file.tmp" "$file"
fi
chmod 600 "$file"
cat "$file"

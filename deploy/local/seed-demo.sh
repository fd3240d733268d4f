#!/usr/bin/env bash
# Seeds the demo account (created once) and its site on localhost, which /demo reports to.
# Used by run.sh and cluster.sh once the api answers.
#   deploy/local/seed-demo.sh <api base URL> <demo email> <demo password>
set -euo pipefail
api=$1 email=$2 password=$3
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
body=$(printf '{"email":"%s","password":"%s","name":"Demo"}' "$email" "$password")
curl -sS -o /dev/null -H 'content-type: application/json' -d "$body" "$api/api/auth/register"
token=$(curl -fsS -H 'content-type: application/json' -d "$body" "$api/api/auth/login" | json "['token']")
sites=$(curl -fsS -H "authorization: Bearer $token" "$api/api/sites")
if [ "$(echo "$sites" | json '.__len__()')" = 0 ]; then
  curl -fsS -o /dev/null -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name":"Demo landing page","domain":"localhost","timezone":"UTC"}' "$api/api/sites"
fi

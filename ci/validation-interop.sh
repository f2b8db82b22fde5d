#!/usr/bin/env bash
# Real challenge validation with real clients: certbot and lego from Debian against the mock's
# rfc8555 profile, which really fetches http-01, really queries its mock DNS for dns-01, and
# really connects for tls-alpn-01. Everything on 127.0.0.1.
#
#   certbot  http-01 (standalone on :5002)   dns-01 (manual hook -> acme-harness admin dns set)
#   lego     http-01 (standalone on :5002)   tls-alpn-01 (standalone on :5001)
#
# Environment: ACME_HARNESS_BIN (default target/debug/acme-harness), VALIDATION_WORKDIR.
# Prints a result line per case and "N passed, M failed"; exits 1 on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$(realpath "${ACME_HARNESS_BIN:-target/debug/acme-harness}")
W=${VALIDATION_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/validation.XXXXXX")}
mkdir -p "$W"
echo "validation: work dir $W"
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/server" --profile rfc8555 \
    --http-01-port 5002 --tls-alpn-01-port 5001 >"$W/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    [ -s "$W/server/ready.json" ] && jq -e . "$W/server/ready.json" >/dev/null 2>&1 && break
    kill -0 $SERVER_PID 2>/dev/null || { cat "$W/server.log"; echo "0 passed, 1 failed"; exit 1; }
    sleep 0.1
done
DIR=$(jq -r '.directories.rfc8555' "$W/server/ready.json")
CA=$(jq -r '.ca_bundle' "$W/server/ready.json")
ROOTS=$(jq -r '.roots' "$W/server/ready.json")

passed=0 failed=0
result() { # NAME RC CERT
    local name=$1 rc=$2 cert=$3
    if [ "$rc" -eq 0 ] && [ -s "$cert" ] && openssl verify -CAfile "$ROOTS" -untrusted "$cert" "$cert" >/dev/null 2>&1; then
        echo "[validation] $name PASS"; passed=$((passed + 1))
    else
        echo "[validation] $name FAIL (exit $rc)"; failed=$((failed + 1))
        tail -n 25 "$W/$name.log" || true
    fi
}

certbot_run() { # NAME DOMAIN ARGS...
    local name=$1 dom=$2; shift 2
    local rc=0
    REQUESTS_CA_BUNDLE=$CA timeout 120 certbot certonly -n --agree-tos -m admin@example.com --no-eff-email \
        --server "$DIR" --config-dir "$W/$name/config" --work-dir "$W/$name/work" --logs-dir "$W/$name/logs" \
        --cert-name "$name" -d "$dom" "$@" >"$W/$name.log" 2>&1 || rc=$?
    result "$name" "$rc" "$W/$name/config/live/$name/fullchain.pem"
}

certbot_run certbot-http-01 web.certbot.example --standalone --preferred-challenges http \
    --http-01-address 127.0.0.1 --http-01-port 5002

# dns-01: the manual hook publishes the TXT record through the admin API.
cat >"$W/dns-hook.sh" <<HOOK
#!/bin/sh
exec "$BIN" admin --data-dir "$W/server" dns set "_acme-challenge.\$CERTBOT_DOMAIN" --txt "\$CERTBOT_VALIDATION"
HOOK
chmod +x "$W/dns-hook.sh"
certbot_run certbot-dns-01 dns.certbot.example --manual --preferred-challenges dns \
    --manual-auth-hook "$W/dns-hook.sh"

lego_run() { # NAME DOMAIN ARGS...
    local name=$1 dom=$2; shift 2
    local rc=0
    LEGO_CA_CERTIFICATES=$CA timeout 120 lego --server "$DIR" --accept-tos --email admin@example.com \
        --path "$W/$name" --domains "$dom" "$@" run >"$W/$name.log" 2>&1 || rc=$?
    result "$name" "$rc" "$W/$name/certificates/$dom.crt"
}
lego_run lego-http-01 web.lego.example --http --http.port 127.0.0.1:5002
lego_run lego-tls-alpn-01 alpn.lego.example --tls --tls.port 127.0.0.1:5001

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The property-based server suites (conformance/tests/server_suites.rs) against an independent
# server: Pebble from Debian, EAB required, on 127.0.0.1 only. Opt-in (CI runs the suites
# against the in-process mock through `cargo test`); known divergences are listed in
# conformance/divergences/pebble.toml and the suites check that each still holds.
# Install Pebble with ci/install-clients.sh first.
#
# Environment (defaults in brackets; every port is on 127.0.0.1):
#   CONFORMANCE_PEBBLE_PORT [14600]  CONFORMANCE_PEBBLE_MGMT_PORT [15600]
#   CONFORMANCE_PEBBLE_HTTP_PORT [5902]  CONFORMANCE_PEBBLE_TLS_PORT [5901]
#   PROPTEST_CASES   cases per property (default: each suite's small CI count)
#   CONFORMANCE_WORKDIR  work dir (default: a new mktemp -d)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PORT=${CONFORMANCE_PEBBLE_PORT:-14600}
MGMT_PORT=${CONFORMANCE_PEBBLE_MGMT_PORT:-15600}
HTTP_PORT=${CONFORMANCE_PEBBLE_HTTP_PORT:-5902}
TLS_PORT=${CONFORMANCE_PEBBLE_TLS_PORT:-5901}

for tool in pebble openssl curl; do
    command -v "$tool" >/dev/null || { echo "conformance-pebble: $tool is missing (bash ci/install-clients.sh)" >&2; exit 1; }
done

W=${CONFORMANCE_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/conformance-pebble.XXXXXX")}
mkdir -p "$W"
W=$(cd "$W" && pwd)
echo "conformance-pebble: work dir $W"

unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE \
    http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

PEBBLE_PID=
cleanup() {
    if [ -n "$PEBBLE_PID" ]; then
        kill "$PEBBLE_PID" 2>/dev/null || true
        wait "$PEBBLE_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Debian's Pebble ships no TLS certificate: a throwaway CA and a 127.0.0.1/localhost cert.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=conformance test CA" -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout "$W/key.pem" -out "$W/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$W/ext.cnf"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
    -days 2 -extfile "$W/ext.cnf" -out "$W/cert.pem" 2>/dev/null

EAB_KID=conformance-kid
EAB_HMAC=$(openssl rand 32 | base64 -w0 | tr '+/' '-_' | tr -d '=')
cat >"$W/pebble.json" <<JSON
{"pebble":{"listenAddress":"127.0.0.1:$PORT","managementListenAddress":"127.0.0.1:$MGMT_PORT",
 "certificate":"$W/cert.pem","privateKey":"$W/key.pem","httpPort":$HTTP_PORT,"tlsPort":$TLS_PORT,
 "ocspResponderURL":"","externalAccountBindingRequired":true,"externalAccountMACKeys":{"$EAB_KID":"$EAB_HMAC"}}}
JSON
chmod 600 "$W/pebble.json"

# No nonce rejection (the nonce suites count refusals), no validation (challenges pass at once).
PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$W/pebble.json" >"$W/pebble.log" 2>&1 &
PEBBLE_PID=$!

up=0
for _ in $(seq 1 100); do
    if curl -sf --cacert "$W/ca.pem" "https://127.0.0.1:$PORT/dir" >/dev/null 2>&1; then
        up=1
        break
    fi
    sleep 0.1
done
if [ "$up" != 1 ]; then
    echo "conformance-pebble: pebble did not come up; its log:" >&2
    cat "$W/pebble.log" >&2
    exit 1
fi

start=$(date +%s)
status=0
ACME_DIRECTORY="https://127.0.0.1:$PORT/dir" ACME_CA_FILE="$W/ca.pem" \
    ACME_EAB_KID="$EAB_KID" ACME_EAB_HMAC="$EAB_HMAC" \
    ACME_TARGET_NAME=pebble ACME_DOMAIN=conformance.example.com ACME_POST_AS_GET=1 \
    ACME_DIVERGENCES="$ROOT/conformance/divergences/pebble.toml" \
    cargo test --workspace --locked --test server_suites -- --test-threads 2 || status=$?
echo "conformance-pebble: suites took $(( $(date +%s) - start )) s, exit $status (pebble log: $W/pebble.log)"
exit "$status"

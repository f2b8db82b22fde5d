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
# shellcheck source=lib/pebble.sh
. ci/lib/pebble.sh
PEBBLE_WHO=conformance-pebble

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

pebble_loopback_env

PEBBLE_PID=
cleanup() {
    if [ -n "$PEBBLE_PID" ]; then
        kill "$PEBBLE_PID" 2>/dev/null || true
        wait "$PEBBLE_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

pebble_tls_cert "$W" conformance
EAB_KID=conformance-kid
EAB_HMAC=$(pebble_random_hmac)
pebble_config "$W/pebble.json" "$W" "$PORT" "$MGMT_PORT" "$HTTP_PORT" "$TLS_PORT" "$EAB_KID" "$EAB_HMAC"

# No nonce rejection (the nonce suites count refusals), no validation (challenges pass at once).
PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$W/pebble.json" >"$W/pebble.log" 2>&1 &
PEBBLE_PID=$!

pebble_wait_up "https://127.0.0.1:$PORT/dir" "$W/ca.pem" "$W/pebble.log"

start=$(date +%s)
status=0
ACME_DIRECTORY="https://127.0.0.1:$PORT/dir" ACME_CA_FILE="$W/ca.pem" \
    ACME_EAB_KID="$EAB_KID" ACME_EAB_HMAC="$EAB_HMAC" \
    ACME_TARGET_NAME=pebble ACME_DOMAIN=conformance.example.com ACME_POST_AS_GET=1 \
    ACME_DIVERGENCES="$ROOT/conformance/divergences/pebble.toml" \
    cargo test --workspace --locked --test server_suites -- --test-threads 2 || status=$?
echo "conformance-pebble: suites took $(( $(date +%s) - start )) s, exit $status (pebble log: $W/pebble.log)"
exit "$status"

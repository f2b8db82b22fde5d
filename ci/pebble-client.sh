#!/usr/bin/env bash
# The reference client against an independent server: Pebble from Debian, with REAL challenge
# validation. Starts pebble-challtestsrv (DNS: every name -> 127.0.0.1) and two Pebbles (one
# plain, one requiring EAB), all on 127.0.0.1 only, then runs the opt-in tests in
# reference-client/tests/pebble.rs. Install Pebble with ci/install-clients.sh first.
#
# Environment (defaults in brackets; every port is on 127.0.0.1):
#   PEBBLE_PORT [14500]  PEBBLE_MGMT_PORT [15500]   the plain Pebble
#   PEBBLE_EAB_PORT [14501]  PEBBLE_EAB_MGMT_PORT [15501]   the EAB Pebble
#   PEBBLE_HTTP_PORT [5802]  PEBBLE_TLS_PORT [5801]   where Pebble's validator connects
#   CHALLTESTSRV_DNS_PORT [8553]  CHALLTESTSRV_MGMT_PORT [8555]
#   PEBBLE_WFE_NONCEREJECT [10]   percentage of nonces Pebble rejects (exercises badNonce)
#   PEBBLE_WORKDIR                work dir (default: a new mktemp -d)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/pebble.sh
. ci/lib/pebble.sh
PEBBLE_WHO=pebble-client

PEBBLE_PORT=${PEBBLE_PORT:-14500}
PEBBLE_MGMT_PORT=${PEBBLE_MGMT_PORT:-15500}
PEBBLE_EAB_PORT=${PEBBLE_EAB_PORT:-14501}
PEBBLE_EAB_MGMT_PORT=${PEBBLE_EAB_MGMT_PORT:-15501}
export PEBBLE_HTTP_PORT=${PEBBLE_HTTP_PORT:-5802}
export PEBBLE_TLS_PORT=${PEBBLE_TLS_PORT:-5801}
DNS_PORT=${CHALLTESTSRV_DNS_PORT:-8553}
MGMT_PORT=${CHALLTESTSRV_MGMT_PORT:-8555}

for tool in pebble pebble-challtestsrv openssl curl; do
    command -v "$tool" >/dev/null || { echo "pebble-client: $tool is missing (bash ci/install-clients.sh)" >&2; exit 1; }
done

W=${PEBBLE_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/pebble-client.XXXXXX")}
mkdir -p "$W"
W=$(cd "$W" && pwd)
echo "pebble-client: work dir $W"

pebble_loopback_env

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

pebble_tls_cert "$W" pebble-client
EAB_KID=kid-1
EAB_HMAC=$(pebble_random_hmac)
pebble_config "$W/pebble.json" "$W" "$PEBBLE_PORT" "$PEBBLE_MGMT_PORT" "$PEBBLE_HTTP_PORT" "$PEBBLE_TLS_PORT"
pebble_config "$W/pebble-eab.json" "$W" "$PEBBLE_EAB_PORT" "$PEBBLE_EAB_MGMT_PORT" "$PEBBLE_HTTP_PORT" "$PEBBLE_TLS_PORT" \
    "$EAB_KID" "$EAB_HMAC"

# Its defaults bind every interface: give loopback addresses for everything.
pebble-challtestsrv -http01 "" -tlsalpn01 "" -https01 "" \
    -dns01 "127.0.0.1:$DNS_PORT" -management "127.0.0.1:$MGMT_PORT" \
    -defaultIPv4 127.0.0.1 -defaultIPv6 "" >"$W/challtestsrv.log" 2>&1 &
PIDS+=($!)

export PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0 PEBBLE_ALTERNATE_ROOTS=1
export PEBBLE_WFE_NONCEREJECT=${PEBBLE_WFE_NONCEREJECT:-10}
pebble -config "$W/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" >"$W/pebble.log" 2>&1 &
PIDS+=($!)
pebble -config "$W/pebble-eab.json" -dnsserver "127.0.0.1:$DNS_PORT" >"$W/pebble-eab.log" 2>&1 &
PIDS+=($!)

pebble_wait_up "https://127.0.0.1:$PEBBLE_PORT/dir" "$W/ca.pem" "$W"/*.log
pebble_wait_up "https://127.0.0.1:$PEBBLE_EAB_PORT/dir" "$W/ca.pem" "$W"/*.log
dns_ready=0
for _ in $(seq 1 100); do
    if curl -sf -X POST -d '{"ip":"127.0.0.1"}' "http://127.0.0.1:$MGMT_PORT/set-default-ipv4" >/dev/null 2>&1; then
        dns_ready=1
        break
    fi
    sleep 0.1
done
if [ "$dns_ready" != 1 ]; then
    echo "pebble-client: pebble-challtestsrv did not come up; its log:" >&2
    cat "$W/challtestsrv.log" >&2
    exit 1
fi

export PEBBLE_DIRECTORY="https://127.0.0.1:$PEBBLE_PORT/dir"
export PEBBLE_EAB_DIRECTORY="https://127.0.0.1:$PEBBLE_EAB_PORT/dir"
export PEBBLE_CA_FILE="$W/ca.pem"
export PEBBLE_EAB_KID="$EAB_KID" PEBBLE_EAB_HMAC="$EAB_HMAC"
export PEBBLE_CHALLTESTSRV="http://127.0.0.1:$MGMT_PORT"

# One at a time: the solvers listen on the fixed ports Pebble's validator connects to.
cargo test --workspace --locked --test pebble -- --ignored --test-threads=1

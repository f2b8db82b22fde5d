#!/usr/bin/env bash
# The judge on real traffic: runs certbot, lego, dehydrated and uacme (Debian) against the mock,
# each with its own EAB credential so that its transcript is separate, once on the happy path and
# once with a `processing` fault (20 s, Retry-After 15) on finalize so that Retry-After honouring
# is observable. Exports each transcript (JSON Lines), grades it with `acme-harness conformance
# grade`, and compares every rule's verdict with ci/grade-expectations.tsv.
#
# Environment:
#   ACME_HARNESS_BIN   the binary (default target/debug/acme-harness)
#   GRADE_CLIENTS      clients to run (default "certbot lego dehydrated uacme")
#   GRADE_WORKDIR      work dir (default: a new mktemp -d); transcripts and reports stay there
#   GRADE_CLIENT_TIMEOUT  seconds before a client run counts as hung (default 120)
#
# Prints one line per (client, scenario, rule) that differs from the expectation, a table per
# client, and a last line "N passed, M failed". Exits 1 if any verdict differs.
# Install the clients with ci/install-clients.sh first; uacme needs root (mount namespace).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BIN=${ACME_HARNESS_BIN:-target/debug/acme-harness}
read -r -a CLIENTS <<<"${GRADE_CLIENTS:-certbot lego dehydrated uacme}"
SCENARIOS=(happy processing)
CLIENT_TIMEOUT=${GRADE_CLIENT_TIMEOUT:-120}
EXPECT="$ROOT/ci/grade-expectations.tsv"

W=${GRADE_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/grade.XXXXXX")}
mkdir -p "$W"
W=$(cd "$W" && pwd)
echo "grade: work dir $W"

unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE HTTPLIB2_CA_CERTS \
    http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(LEGO_|CERTBOT_)' || true)
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

SERVER_PID=""
cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT

die() {
    echo "grade: SETUP FAILED: $*" >&2
    [ -s "$W/server.log" ] && tail -n 30 "$W/server.log" >&2
    echo "0 passed, 1 failed"
    exit 1
}

for c in "${CLIENTS[@]}"; do
    command -v "$c" >/dev/null || die "$c not installed (run ci/install-clients.sh)"
done
for t in jq curl openssl timeout python3 unshare; do
    command -v "$t" >/dev/null || die "$t not installed (run ci/install-clients.sh)"
done
[ -x "$BIN" ] || die "binary '$BIN' not found (cargo build -p acme-harness)"
[ -f "$EXPECT" ] || die "expectations file $EXPECT missing"

# ---------------------------------------------------------------------------------------------
# The mock, one profile.
mkdir -p "$W/server"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/server" --profile sectigo-incommon-rsa-ov \
    >"$W/server.log" 2>&1 &
SERVER_PID=$!
READY="$W/server/ready.json"
for _ in $(seq 300); do
    if [ -s "$READY" ] && jq -e . "$READY" >/dev/null 2>&1; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited before writing ready.json"
    sleep 0.1
done
jq -e . "$READY" >/dev/null 2>&1 || die "no ready.json after 30 s"
DIRECTORY=$(jq -er '.directory' "$READY")
CA=$(jq -er '.ca_bundle' "$READY")
ADMIN=$(jq -er '.admin_url' "$READY")
TOKEN=$(jq -er '.admin_token' "$READY")
DOMAIN=$(jq -er '.demo.domains[0]' "$READY")
echo "grade: directory $DIRECTORY, domain $DOMAIN"

admin() {
    # admin METHOD PATH [JSON-BODY]
    local args=(-sS -f --cacert "$CA" -H "Authorization: Bearer $TOKEN" -X "$1" "$ADMIN$2")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
    curl "${args[@]}"
}

# The highest seq recorded so far, over the unattributed scope and every credential used.
LAST_SEQ=0
max_seq() {
    local m
    m=$(admin GET "/eab/$1/requests" | jq '[.[].seq] | max // 0')
    [ "$m" -gt "$LAST_SEQ" ] && LAST_SEQ=$m
    return 0
}

# ---------------------------------------------------------------------------------------------
# Clients (one run each; the mock's delegated authorizations are valid, so no challenge is
# answered and no port is bound). Each: run_CLIENT CW KID HMAC.
run_certbot() {
    mkdir -p "$1/xdg"
    env REQUESTS_CA_BUNDLE="$CA" XDG_CONFIG_HOME="$1/xdg" \
        timeout -k 10 "$CLIENT_TIMEOUT" certbot certonly -n --agree-tos -m admin@example.com \
        --no-eff-email --server "$DIRECTORY" --eab-kid "$2" --eab-hmac-key "$3" \
        --standalone --http-01-port 5002 --http-01-address 127.0.0.1 \
        --config-dir "$1/config" --work-dir "$1/work" --logs-dir "$1/logs" \
        --cert-name grade -d "$DOMAIN"
}
run_lego() {
    env LEGO_CA_CERTIFICATES="$CA" timeout -k 10 "$CLIENT_TIMEOUT" lego --server "$DIRECTORY" \
        --accept-tos --email admin@example.com --eab --kid "$2" --hmac "$3" --path "$1" \
        --domains "$DOMAIN" --http --http.port 127.0.0.1:5002 run
}
run_dehydrated() {
    mkdir -p "$1/wellknown" "$1/home"
    cat >"$1/config" <<CFG
CA="$DIRECTORY"
BASEDIR="$1"
WELLKNOWN="$1/wellknown"
CHALLENGETYPE="http-01"
CONTACT_EMAIL="admin@example.com"
CURL_OPTS="--cacert $CA"
EAB_KID="$2"
EAB_HMAC_KEY="$3"
CFG
    env HOME="$1/home" XDG_CONFIG_HOME="$1/home" timeout -k 10 "$CLIENT_TIMEOUT" \
        dehydrated -f "$1/config" --register --accept-terms || return $?
    env HOME="$1/home" XDG_CONFIG_HOME="$1/home" timeout -k 10 "$CLIENT_TIMEOUT" \
        dehydrated -f "$1/config" -c -d "$DOMAIN"
}
uacme_ns() {
    local cw=$1; shift
    # shellcheck disable=SC2016 # expanded by the inner sh
    timeout -k 10 "$CLIENT_TIMEOUT" unshare -m sh -c \
        'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec uacme "$@"' \
        "$cw/bundle.crt" "$@"
}
run_uacme() {
    cat /etc/ssl/certs/ca-certificates.crt "$CA" >"$1/bundle.crt"
    printf '#!/bin/sh\nexit 1\n' >"$1/hook.sh"
    chmod +x "$1/hook.sh"
    uacme_ns "$1" -v -c "$1/conf" -a "$DIRECTORY" -e "$2:$3" -y new admin@example.com || return $?
    uacme_ns "$1" -v -c "$1/conf" -a "$DIRECTORY" -h "$1/hook.sh" issue "$DOMAIN"
}

# ---------------------------------------------------------------------------------------------
# Run, export, grade.
PROCESSING_FAULT='{"rule":[{"endpoint":"finalize","fault":"processing","seconds":20,"retry_after":15,"nth":[1]}]}'
max_seq -
start_all=$(date +%s)
for client in "${CLIENTS[@]}"; do
    for scenario in "${SCENARIOS[@]}"; do
        cw="$W/$client-$scenario"
        mkdir -p "$cw"
        cred=$(admin POST /eab "{\"department\":0,\"domains\":[\"$DOMAIN\",\"*.$DOMAIN\"],\"reusable\":true}") \
            || die "cannot mint an EAB credential"
        kid=$(jq -er .eab_kid <<<"$cred")
        hmac=$(jq -er .eab_hmac_key <<<"$cred")
        if [ "$scenario" = processing ]; then
            admin PUT "/eab/$kid/faults" "$PROCESSING_FAULT" >/dev/null || die "cannot set the fault plan"
        fi
        from=$LAST_SEQ
        t0=$(date +%s)
        rc=0
        "run_$client" "$cw" "$kid" "$hmac" >"$cw/client.log" 2>&1 || rc=$?
        echo "grade: $client $scenario: client exit $rc in $(( $(date +%s) - t0 )) s (log $cw/client.log)"
        # The credential's exchanges, plus the unattributed ones (directory, newNonce, plain
        # GETs) recorded while this client ran: clients run one at a time.
        admin GET "/eab/$kid/requests?format=jsonl" >"$cw/transcript.jsonl"
        admin GET "/eab/-/requests" | jq -c --argjson from "$from" '.[] | select(.seq > $from)' \
            >"$cw/unattributed.jsonl"
        max_seq -
        max_seq "$kid"
        grc=0
        "$BIN" conformance grade "$cw/transcript.jsonl" "$cw/unattributed.jsonl" \
            --json "$cw/report.json" --junit "$cw/report.xml" >"$cw/report.md" || grc=$?
        [ "$grc" -le 1 ] || die "grading $cw/transcript.jsonl failed (exit $grc)"
        jq -r --arg c "$client" --arg s "$scenario" '.rules[] | [$c, $s, .id, .verdict] | @tsv' \
            "$cw/report.json" >>"$W/verdicts.tsv"
    done
done
echo "grade: clients and grading took $(( $(date +%s) - start_all )) s"

# ---------------------------------------------------------------------------------------------
# Compare with the expectations: lines "client<TAB>scenario<TAB>rule<TAB>verdict<TAB>reason",
# scenario "*" for both. Every verdict must have exactly one expectation.
python3 - "$W/verdicts.tsv" "$EXPECT" <<'PY'
import sys
verdicts = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
expect = {}
for n, line in enumerate(open(sys.argv[2]), 1):
    if not line.strip() or line.startswith("#"):
        continue
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 5 or not parts[4].strip():
        sys.exit(f"{sys.argv[2]}:{n}: want client, scenario, rule, verdict, reason (tab-separated)")
    expect[tuple(parts[:3])] = parts[3]
passed = failed = 0
table = {}
for client, scenario, rule, verdict in verdicts:
    want = expect.get((client, scenario, rule), expect.get((client, "*", rule)))
    ok = want == verdict
    passed += ok
    failed += not ok
    if not ok:
        print(f"MISMATCH {client} {scenario} {rule}: got {verdict}, expected {want or 'no expectation'}")
    table.setdefault((client, rule), {})[scenario] = verdict + ("" if ok else "(!)")
scenarios = sorted({s for _, s, _, _ in verdicts}, key=["happy", "processing"].index)
clients = list(dict.fromkeys(c for c, _, _, _ in verdicts))
for client in clients:
    print(f"\n{client}: " + " / ".join(scenarios))
    for (c, rule), v in table.items():
        if c == client:
            print(f"  {rule:28} " + " / ".join(v.get(s, "-") for s in scenarios))
print(f"\n{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY

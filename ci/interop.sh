#!/usr/bin/env bash
# Interop test: run the real, unmodified ACME clients (certbot, lego, dehydrated, uacme) from
# Debian against the acme-harness mock server and check what they get.
#
# Environment:
#   ACME_HARNESS_BIN   server binary (default target/release/acme-harness, relative to repo root)
#   INTEROP_CLIENTS    clients to run (default "certbot lego dehydrated uacme")
#   INTEROP_WORKDIR    work dir (default: a new mktemp -d); per-client logs stay there
#   INTEROP_PARALLEL   1 (default) runs the clients in parallel, 0 runs them one after another
#   INTEROP_CLIENT_TIMEOUT  seconds before a client run counts as hung (default 120)
#
# Prints a table (client, case, expected, got, result) and a last line "N passed, M failed".
# Exits 1 if any case failed. Install the clients with ci/install-clients.sh first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BIN=${ACME_HARNESS_BIN:-target/release/acme-harness}
read -r -a CLIENTS <<<"${INTEROP_CLIENTS:-certbot lego dehydrated uacme}"
PARALLEL=${INTEROP_PARALLEL:-1}
CASES=(issue-rsa issue-ecdsa no-eab no-eab-server bad-hmac undelegated)
CLIENT_TIMEOUT=${INTEROP_CLIENT_TIMEOUT:-120}

W=${INTEROP_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX")}
mkdir -p "$W"
W=$(cd "$W" && pwd)
echo "interop: work dir $W"

# ---------------------------------------------------------------------------------------------
# Environment hygiene: the machine may point every TLS stack at the system bundle; each client
# gets its own trust setting below instead. Proxies must never see loopback traffic.
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE HTTPLIB2_CA_CERTS \
    http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(LEGO_|CERTBOT_)' || true)
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

SERVER_PID=""
CLIENT_PIDS=()

total_cases() { echo $(( ${#CLIENTS[@]} * ${#CASES[@]} )); }

# Setup failed before any client ran: count every case as failed and stop.
die_setup() {
    echo "interop: SETUP FAILED: $*" >&2
    if [ -s "$W/server.log" ]; then
        echo "---- tail of $W/server.log ----" >&2
        tail -n 40 "$W/server.log" >&2
    fi
    echo "0 passed, $(total_cases) failed"
    exit 1
}

cleanup() {
    local rc=$? p i
    trap - EXIT
    for p in "${CLIENT_PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            pkill -TERM -P "$p" 2>/dev/null || true
            kill "$p" 2>/dev/null || true
        fi
    done
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            [ "$i" -eq 50 ] && kill -KILL "$SERVER_PID" 2>/dev/null
            sleep 0.1
        done
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Preconditions
case "$W" in *[[:space:]]*) die_setup "work dir must not contain whitespace (dehydrated's CURL_OPTS is word-split)";; esac
for c in "${CLIENTS[@]}"; do
    case "$c" in
        certbot|lego|dehydrated|uacme) command -v "$c" >/dev/null \
            || die_setup "$c not installed (run ci/install-clients.sh)";;
        *) die_setup "unknown client '$c' in INTEROP_CLIENTS";;
    esac
    if [ "$c" = uacme ]; then
        [ "$(id -u)" -eq 0 ] || die_setup "uacme needs root (private mount namespace for its CA bundle)"
        [ -f /etc/ssl/certs/ca-certificates.crt ] || die_setup "uacme: /etc/ssl/certs/ca-certificates.crt missing"
    fi
done
for t in jq openssl timeout python3 pkill; do
    command -v "$t" >/dev/null || die_setup "$t not installed (run ci/install-clients.sh)"
done
[ -x "$BIN" ] || die_setup "server binary '$BIN' not found or not executable (cargo build --release?)"

# ---------------------------------------------------------------------------------------------
# Start the server and read ready.json
mkdir -p "$W/server" "$W/results"
rm -f "$W/server/ready.json" "$W/results/"*
# The third profile hides the EAB requirement from the directory, so that clients send a
# newAccount without EAB and meet the server's own Sectigo text (case no-eab-server).
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/server" \
    --profile sectigo-incommon-rsa-ov --profile sectigo-incommon-ecc-ov \
    --profile fixtures/profiles/test/incommon-rsa-ov-unadvertised-eab.toml \
    >"$W/server.log" 2>&1 &
SERVER_PID=$!
echo "interop: server pid $SERVER_PID, log $W/server.log"

READY="$W/server/ready.json"
for _ in $(seq 300); do
    # The file may appear before it is completely written: wait until it parses.
    if [ -s "$READY" ] && jq -e . "$READY" >/dev/null 2>&1; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die_setup "server exited before writing ready.json"
    sleep 0.1
done
if ! { [ -s "$READY" ] && jq -e . "$READY" >/dev/null 2>&1; }; then
    die_setup "no valid $READY after 30 s"
fi

rj() { jq -er "$1" "$READY"; }
# (die_setup must run in this shell, not inside the $(...), so it comes after the ||.)
DIR_RSA=$(rj '.directories["sectigo-incommon-rsa-ov"] // .directory') || die_setup "ready.json: no RSA directory"
DIR_ECC=$(rj '.directories["sectigo-incommon-ecc-ov"]') || die_setup "ready.json: no ECC directory"
DIR_QUIET=$(rj '.directories["test-incommon-rsa-ov-unadvertised-eab"]') || die_setup "ready.json: no unadvertised-EAB directory"
CA=$(rj '.ca_bundle') || die_setup "ready.json: no ca_bundle"
ROOTS=$(rj '.roots') || die_setup "ready.json: no roots"
KID=$(rj '.demo.eab_kid') || die_setup "ready.json: no demo.eab_kid"
HMAC=$(rj '.demo.eab_hmac_key') || die_setup "ready.json: no demo.eab_hmac_key"
DOMAIN=$(rj '.demo.domains[0]') || die_setup "ready.json: no demo.domains[0]"
UNDELEGATED=$(rj '.demo.undelegated_domain') || die_setup "ready.json: no demo.undelegated_domain"
[ -s "$CA" ] || die_setup "ca_bundle $CA missing"
[ -s "$ROOTS" ] || die_setup "roots $ROOTS missing"

# A valid, different 64-byte base64url (unpadded) HMAC key.
# Not starting with `-`: certbot's argument parser would take `--eab-hmac-key -x...` for an
# option and fail before it ever meets the server (1 key in 64).
BAD_HMAC=-
while [ "${BAD_HMAC#-}" != "$BAD_HMAC" ]; do
    BAD_HMAC=$(openssl rand 64 | base64 -w0 | tr '+/' '-_' | tr -d '=')
done
[ "$BAD_HMAC" != "$HMAC" ] || die_setup "random bad HMAC equals the real one"

echo "interop: rsa directory $DIR_RSA"
echo "interop: ecc directory $DIR_ECC"
echo "interop: domain $DOMAIN, undelegated $UNDELEGATED, clients: ${CLIENTS[*]}"

# One free loopback port per client for http-01 (standalone clients bind it only if a challenge
# is actually pending; the mock's delegated authorizations are already valid).
PORTS_STR=$(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "${#CLIENTS[@]}") || die_setup "could not pick free ports"
read -r -a PORTS <<<"$PORTS_STR"

# ---------------------------------------------------------------------------------------------
# Client drivers. Each: run_<client> CW KEYTYPE(rsa|ec) DIRECTORY DOMAIN EAB(good|none|bad) PORT
# runs the client with all output on stdout/stderr and returns its exit code (124/137 = timed
# out). locate_<client> CW DOMAIN sets LEAF (file whose first certificate is the leaf) and CHAIN
# (issuer certificates without the leaf; empty = the certificates after the leaf in LEAF).
# EXTRA_LOGS lists further files to search for the server's error text.

eab_hmac() { if [ "$1" = bad ]; then echo "$BAD_HMAC"; else echo "$HMAC"; fi; }

# certbot 2.1: --key-type {rsa,ecdsa}, --rsa-key-size, --elliptic-curve, --eab-kid, --eab-hmac-key.
# It reads /etc/letsencrypt/cli.ini (Debian's sets max-log-backups = 0, harmless) and
# $XDG_CONFIG_HOME/letsencrypt/cli.ini, so XDG_CONFIG_HOME points into the work dir.
# Prints the server's problem detail on stderr; full DEBUG log in CW/logs/letsencrypt.log.
# Refuses locally, before any newAccount, when the directory's meta.externalAccountRequired is
# true and no EAB is given: "Server requires external account binding."
run_certbot() {
    local cw=$1 kt=$2 dir=$3 dom=$4 eab=$5 port=$6 keyargs eabargs=()
    if [ "$kt" = rsa ]; then keyargs=(--key-type rsa --rsa-key-size 2048)
    else keyargs=(--key-type ecdsa --elliptic-curve secp256r1); fi
    [ "$eab" = none ] || eabargs=(--eab-kid "$KID" --eab-hmac-key "$(eab_hmac "$eab")")
    mkdir -p "$cw/xdg"
    env REQUESTS_CA_BUNDLE="$CA" XDG_CONFIG_HOME="$cw/xdg" \
        timeout -k 10 "$CLIENT_TIMEOUT" certbot certonly -n --agree-tos -m admin@example.com \
        --no-eff-email --server "$dir" "${eabargs[@]}" "${keyargs[@]}" \
        --standalone --http-01-port "$port" --http-01-address 127.0.0.1 \
        --config-dir "$cw/config" --work-dir "$cw/work" --logs-dir "$cw/logs" \
        --cert-name interop -d "$dom"
}
locate_certbot() {
    LEAF="$1/config/live/interop/cert.pem"
    CHAIN="$1/config/live/interop/chain.pem"
}
extra_logs_certbot() { EXTRA_LOGS=("$1"/logs/*.log); }

# lego 4.9.1: --key-type rsa2048|ec256 (also picks the ACCOUNT key type: RS256 vs ES256),
# --eab --kid --hmac (hmac: base64url without padding), --http --http.port IFACE:PORT.
# Trust: LEGO_CA_CERTIFICATES (replaces the system pool). Prints the server's problem detail.
# Refuses locally when meta.externalAccountRequired is true and --eab is absent:
# "Server requires External Account Binding. Use --eab with --kid and --hmac."
run_lego() {
    local cw=$1 kt=$2 dir=$3 dom=$4 eab=$5 port=$6 keytype eabargs=()
    if [ "$kt" = rsa ]; then keytype=rsa2048; else keytype=ec256; fi
    [ "$eab" = none ] || eabargs=(--eab --kid "$KID" --hmac "$(eab_hmac "$eab")")
    env LEGO_CA_CERTIFICATES="$CA" \
        timeout -k 10 "$CLIENT_TIMEOUT" lego --server "$dir" --accept-tos \
        --email admin@example.com "${eabargs[@]}" --key-type "$keytype" --path "$cw" \
        --domains "$dom" --http --http.port "127.0.0.1:$port" run
}
locate_lego() {
    # CW/certificates/DOMAIN.crt = leaf + issuers (bundle), DOMAIN.issuer.crt = issuers only.
    LEAF="$1/certificates/$2.crt"
    CHAIN="$1/certificates/$2.issuer.crt"
}
extra_logs_lego() { EXTRA_LOGS=(); }

# dehydrated 0.7.0: config-file driven (KEY_ALGO=rsa|prime256v1|secp384r1, EAB_KID,
# EAB_HMAC_KEY, CURL_OPTS). On an HTTP error it prints the response headers and problem body
# to stderr. Refuses locally when meta.externalAccountRequired is true and EAB is unset:
# "This CA requires an external account but no EAB_KID/EAB_HMAC_KEY has been configured".
# It has no built-in server: http-01 files go to WELLKNOWN (nothing serves them; the mock's
# delegated authorizations need none). HOME is redirected so no ~/.curlrc is read.
run_dehydrated() {
    local cw=$1 kt=$2 dir=$3 dom=$4 eab=$5 algo
    if [ "$kt" = rsa ]; then algo=rsa; else algo=prime256v1; fi
    mkdir -p "$cw/wellknown" "$cw/home"
    {
        echo "CA=\"$dir\""
        echo "BASEDIR=\"$cw\""
        echo "WELLKNOWN=\"$cw/wellknown\""
        echo "CHALLENGETYPE=\"http-01\""
        echo "CONTACT_EMAIL=\"admin@example.com\""
        echo "CURL_OPTS=\"--cacert $CA\""
        echo "KEY_ALGO=\"$algo\""
        echo "KEYSIZE=\"2048\""
        if [ "$eab" != none ]; then
            echo "EAB_KID=\"$KID\""
            echo "EAB_HMAC_KEY=\"$(eab_hmac "$eab")\""
        fi
    } >"$cw/config"
    env HOME="$cw/home" XDG_CONFIG_HOME="$cw/home" \
        timeout -k 10 "$CLIENT_TIMEOUT" dehydrated -f "$cw/config" --register --accept-terms \
        || return $?
    env HOME="$cw/home" XDG_CONFIG_HOME="$cw/home" \
        timeout -k 10 "$CLIENT_TIMEOUT" dehydrated -f "$cw/config" -c -d "$dom"
}
locate_dehydrated() {
    LEAF="$1/certs/$2/cert.pem"
    CHAIN="$1/certs/$2/chain.pem"
}
extra_logs_dehydrated() { EXTRA_LOGS=(); }

# uacme 1.7.4: -t RSA|EC (cert key type; applies to newly generated keys only, so it is given to
# `issue` only and the account key stays RSA), -e KEYID:KEY, -h HOOK, -c CONFDIR, -a URL, -y.
# Exit: 0 issued, 1 not reissued (still current), 2 failure. Prints "the server reported the
# following error:" and the problem JSON. Refuses locally when meta.externalAccountRequired is
# true and -e is absent: "this ACME server requires external credentials, please supply them
# with -e KEYID:KEY".
# Trust: uacme (libcurl-gnutls) only reads the system bundle, so the mock's CA is bind-mounted
# over /etc/ssl/certs/ca-certificates.crt in a private mount namespace (root only).
uacme_ns() {
    # uacme_ns CW ARGS...: run uacme with the mock's CA as the only system bundle.
    local cw=$1; shift
    # shellcheck disable=SC2016 # $0 and $@ are expanded by the inner sh
    timeout -k 10 "$CLIENT_TIMEOUT" unshare -m sh -c \
        'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec uacme "$@"' \
        "$cw/bundle.crt" "$@"
}
run_uacme() {
    local cw=$1 kt=$2 dir=$3 dom=$4 eab=$5 type eabargs=()
    if [ "$kt" = rsa ]; then type=RSA; else type=EC; fi
    [ "$eab" = none ] || eabargs=(-e "$KID:$(eab_hmac "$eab")")
    cp "$CA" "$cw/bundle.crt"
    mkdir -p "$cw/wellknown"
    cat >"$cw/hook.sh" <<EOF
#!/bin/sh
# uacme hook: METHOD TYPE IDENT TOKEN AUTH; answer http-01 into the webroot, decline the rest.
case "\$1:\$2" in
  begin:http-01) printf '%s' "\$5" > "$cw/wellknown/\$4"; exit 0 ;;
  done:http-01|failed:http-01) rm -f "$cw/wellknown/\$4"; exit 0 ;;
  *) exit 1 ;;
esac
EOF
    chmod +x "$cw/hook.sh"
    uacme_ns "$cw" -v -c "$cw/conf" -a "$dir" "${eabargs[@]}" -y new admin@example.com \
        || return $?
    uacme_ns "$cw" -v -c "$cw/conf" -a "$dir" -h "$cw/hook.sh" -t "$type" issue "$dom"
}
locate_uacme() {
    # CONFDIR/DOMAIN/cert.pem holds leaf + chain.
    LEAF="$1/conf/$2/cert.pem"
    CHAIN=""
}
extra_logs_uacme() { EXTRA_LOGS=(); }

# ---------------------------------------------------------------------------------------------
# Checks

# What each client prints when the directory's meta.externalAccountRequired is true and it has no
# EAB credentials (certbot, lego, dehydrated, uacme, in that order).
LOCAL_EAB_REFUSAL='Server requires external account binding|Server requires External Account Binding|This CA requires an external account|this ACME server requires external credentials'

# check_cert CW LEAF CHAIN DOMAIN KEYTYPE: prints a short verdict; returns non-zero on failure.
check_cert() {
    local cw=$1 leaf=$2 chain=$3 dom=$4 kt=$5 untrusted=() sans alg
    [ -s "$leaf" ] || { echo "no certificate at ${leaf#"$W"/}"; return 1; }
    openssl x509 -in "$leaf" -out "$cw/leaf.pem" 2>"$cw/check.log" \
        || { echo "leaf does not parse"; return 1; }
    if [ -z "$chain" ]; then
        # Everything after the first certificate.
        chain="$cw/chain-from-bundle.pem"
        awk 'n; /-----END CERTIFICATE-----/ {n=1}' "$leaf" >"$chain"
    fi
    if [ -s "$chain" ] && grep -q -- '-----BEGIN CERTIFICATE-----' "$chain"; then
        untrusted=(-untrusted "$chain")
    fi
    if ! openssl verify -CAfile "$ROOTS" "${untrusted[@]}" "$cw/leaf.pem" >>"$cw/check.log" 2>&1; then
        echo "openssl verify failed: $(grep -m1 -i 'error' "$cw/check.log" || tail -n 1 "$cw/check.log")"
        return 1
    fi
    sans=$(openssl x509 -in "$cw/leaf.pem" -noout -ext subjectAltName 2>>"$cw/check.log" \
        | tail -n +2 | tr ',' '\n' | sed 's/^[[:space:]]*//')
    grep -qxF "DNS:$dom" <<<"$sans" || { echo "SAN lacks DNS:$dom"; return 1; }
    openssl x509 -in "$cw/leaf.pem" -noout -text >"$cw/leaf.txt"
    alg=$(sed -n 's/^ *Public Key Algorithm: //p' "$cw/leaf.txt" | head -n 1)
    if [ "$kt" = rsa ] && [ "$alg" != rsaEncryption ]; then echo "leaf key is $alg, not RSA"; return 1; fi
    if [ "$kt" = ec ] && ! grep -q 'ASN1 OID: prime256v1' "$cw/leaf.txt"; then
        echo "leaf key is $alg, not EC P-256"; return 1
    fi
    [ "${#untrusted[@]}" -gt 0 ] || { echo "verified, but no chain delivered"; return 1; }
    echo "chain verified, SAN ok"
}

# record CLIENT CASE EXPECTED GOT PASS|FAIL
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$W/results/$1"
    printf '[%s] %-11s %s: %s\n' "$1" "$2" "$5" "$4"
}

run_case() {
    local client=$1 case=$2 port=$3
    local cw="$W/$client/$case" kt=rsa dir=$DIR_RSA dom=$DOMAIN eab=good
    local expected pattern rc=0 got
    rm -rf "$cw"
    mkdir -p "$cw"
    case "$case" in
        issue-rsa)   expected="exit 0, valid RSA chain" ;;
        issue-ecdsa) expected="exit 0, valid EC chain"; kt=ec; dir=$DIR_ECC ;;
        no-eab)      eab=none
                     expected="error: externalAccountBinding"
                     pattern='"externalAccountBinding" field' ;;
        no-eab-server) eab=none; dir=$DIR_QUIET
                     expected="server: externalAccountRequired"
                     # Clients that print the problem JSON escape the quotes: match around them.
                     pattern='must include a value for the .{1,2}externalAccountBinding' ;;
        bad-hmac)    eab=bad; expected="error: Invalid MAC"; pattern='Invalid MAC on JWS request' ;;
        undelegated) dom=$UNDELEGATED; expected="error: not delegated"; pattern='has not been delegated' ;;
    esac

    "run_$client" "$cw" "$kt" "$dir" "$dom" "$eab" "$port" >"$cw/out.log" 2>&1 </dev/null || rc=$?

    local LEAF CHAIN EXTRA_LOGS
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        record "$client" "$case" "$expected" "exit $rc (hung, killed after ${CLIENT_TIMEOUT}s)" FAIL
    elif [ "${case#issue-}" != "$case" ]; then
        if [ "$rc" -ne 0 ]; then
            record "$client" "$case" "$expected" "exit $rc" FAIL
        else
            "locate_$client" "$cw" "$dom"
            if got=$(check_cert "$cw" "$LEAF" "$CHAIN" "$dom" "$kt"); then
                record "$client" "$case" "$expected" "exit 0, $got" PASS
            else
                record "$client" "$case" "$expected" "exit 0, $got" FAIL
            fi
        fi
    else
        "extra_logs_$client" "$cw"
        if [ "$rc" -eq 0 ]; then
            record "$client" "$case" "$expected" "exit 0 (accepted)" FAIL
        elif grep -qiE -- "$pattern" "$cw/out.log" "${EXTRA_LOGS[@]}" 2>/dev/null; then
            record "$client" "$case" "$expected" "exit $rc, text found" PASS
        elif [ "$case" = no-eab ] && grep -qiE -- "$LOCAL_EAB_REFUSAL" "$cw/out.log"; then
            # All four clients read the directory's meta.externalAccountRequired and refuse
            # before sending any newAccount, so the mock's own problem text is never reached.
            record "$client" "$case" "$expected" "exit $rc, client refused locally (meta.externalAccountRequired)" PASS
        else
            record "$client" "$case" "$expected" "exit $rc, text missing" FAIL
        fi
    fi
}

run_client() {
    local client=$1 port=$2 case
    rm -rf "${W:?}/$client"
    mkdir -p "$W/$client"
    for case in "${CASES[@]}"; do
        run_case "$client" "$case" "$port"
    done
}

# ---------------------------------------------------------------------------------------------
# Run
for i in "${!CLIENTS[@]}"; do
    c=${CLIENTS[$i]}
    if [ "$PARALLEL" = 1 ]; then
        run_client "$c" "${PORTS[$i]}" 2>"$W/$c.driver.log" &
        CLIENT_PIDS+=($!)
    else
        run_client "$c" "${PORTS[$i]}" 2>"$W/$c.driver.log" || true
    fi
done
for p in "${CLIENT_PIDS[@]}"; do wait "$p" || true; done
CLIENT_PIDS=()

server_alive=1
kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0

# ---------------------------------------------------------------------------------------------
# Report
passed=0 failed=0
rows=()
fail_names=()
for c in "${CLIENTS[@]}"; do
    for case in "${CASES[@]}"; do
        line=$(awk -F'\t' -v c="$case" '$2 == c' "$W/results/$c" 2>/dev/null | tail -n 1)
        if [ -z "$line" ]; then
            line=$(printf '%s\t%s\t%s\t%s\t%s' "$c" "$case" "-" "no result (driver error)" FAIL)
        fi
        rows+=("$line")
        IFS=$'\t' read -r _ _ _ _ res _ <<<"$line"
        if [ "$res" = PASS ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            fail_names+=("$c/$case")
        fi
    done
done

for name in "${fail_names[@]}"; do
    echo
    echo "==== FAILED $name ===="
    for log in "$W/${name%%/*}.driver.log" "$W/$name/out.log" "$W/$name/check.log" \
        "$W/$name/logs/letsencrypt.log"; do
        [ -s "$log" ] || continue
        echo "---- tail of $log ----"
        tail -n 30 "$log"
    done
done
if [ "$failed" -gt 0 ] || [ "$server_alive" = 0 ]; then
    echo
    echo "==== tail of $W/server.log ===="
    tail -n 40 "$W/server.log" 2>/dev/null || true
fi

echo
printf '%-11s %-12s %-32s %-6s %s\n' CLIENT CASE EXPECTED RESULT GOT
for line in "${rows[@]}"; do
    IFS=$'\t' read -r c case exp got res _ <<<"$line"
    printf '%-11s %-12s %-32s %-6s %s\n' "$c" "$case" "$exp" "$res" "$got"
done
if [ "$server_alive" = 0 ]; then
    echo "interop: the server died during the run"
    failed=$((failed + 1))
fi
echo "interop: work dir $W"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The mock against Pebble, side by side, in one run (issue 5).
#
# Starts Pebble from Debian (always-valid, no VA sleep, no nonce rejection, EAB with the demo
# credential, 127.0.0.1 only, ports from the OS) and the mock with two benchmark profiles:
#   rfc8555-bench   the built-in rfc8555 profile with order.danger_skip_validation = true,
#                   the mode equivalent to Pebble's PEBBLE_VA_ALWAYS_VALID=1;
#   incommon-bench  sectigo-incommon-ecc-ov with processing_ms = 0 (pre-validated
#                   authorizations, no challenge), for reference.
# Then runs the same `acme-harness bench` against each, alternating, and prints both absolute
# figures and the ratio mock/Pebble.
#
#   cargo build --release -p acme-harness && bash ci/bench-vs-pebble.sh          # ~1 minute
#   BENCH_HEAVY=1 bash ci/bench-vs-pebble.sh                                       # ~5 minutes
#
# Settings (environment): ACME_HARNESS_BIN (default target/release/acme-harness),
# BENCH_ROUNDS (alternations, default 2; heavy 3), BENCH_SECONDS (per bench, default 8;
# heavy 30), BENCH_CONCURRENCY (clients in the side-by-side runs, default 3: Pebble 2.4.0
# deadlocks with 4 or more concurrent clients, see docs/performance.md),
# BENCH_SATURATION_CONCURRENCY (clients of one extra mock-only run at saturation, default 16;
# 0 skips it; on a machine with 2+ CPUs it is repeated with the mock pinned to CPU 1 and the
# driver to CPU 0, for the per-core figure), BENCH_CERT_KEY (p256 | rsa2048, default p256),
# BENCH_ACCOUNTS (per-issuance | per-client, default per-issuance), BENCH_KEEP=1 keeps the
# work directory (configs, logs, one JSON report per bench).
# Needs: pebble, openssl, curl, python3. Every address is 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib/pebble.sh
. ci/lib/pebble.sh
PEBBLE_WHO=bench-vs-pebble
pebble_loopback_env
BIN=${ACME_HARNESS_BIN:-target/release/acme-harness}
if [[ ${BENCH_HEAVY:-0} == 1 ]]; then
    ROUNDS=${BENCH_ROUNDS:-3}
    SECS=${BENCH_SECONDS:-30}
else
    ROUNDS=${BENCH_ROUNDS:-2}
    SECS=${BENCH_SECONDS:-8}
fi
CONC=${BENCH_CONCURRENCY:-3}
SAT_CONC=${BENCH_SATURATION_CONCURRENCY:-16}
CERT_KEY=${BENCH_CERT_KEY:-p256}
ACCOUNTS=${BENCH_ACCOUNTS:-per-issuance}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

for tool in pebble openssl curl "$PY"; do
    command -v "$tool" >/dev/null || { echo "bench-vs-pebble: $tool is missing (apt-get install -y pebble openssl curl python3)" >&2; exit 1; }
done
[[ -x $BIN ]] || { echo "bench-vs-pebble: $BIN not found: cargo build --release -p acme-harness" >&2; exit 1; }

W=$(mktemp -d /tmp/bench-vs-pebble.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ------------------------------------------------------------------ the mock
sed -e 's/^name = .*/name = "rfc8555-bench"/' \
    -e 's|^directory_path = .*|directory_path = "/v2/rfc8555bench"|' \
    -e '/^danger_skip_validation/d' \
    -e 's/^\[order\]$/[order]\ndanger_skip_validation = true/' \
    fixtures/profiles/rfc8555.toml >"$W/rfc8555-bench.toml"
sed -e 's/^name = .*/name = "incommon-bench"/' \
    -e 's|^directory_path = .*|directory_path = "/v2/InCommonBench"|' \
    -e 's/^processing_ms = .*/processing_ms = 0/' \
    fixtures/profiles/sectigo-incommon-ecc-ov.toml >"$W/incommon-bench.toml"
grep -q '^danger_skip_validation = true' "$W/rfc8555-bench.toml"
grep -q '^processing_ms = 0' "$W/incommon-bench.toml"

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/mock" \
    --profile "$W/rfc8555-bench.toml" --profile "$W/incommon-bench.toml" \
    --http-01-port "$(free_port)" --tls-alpn-01-port "$(free_port)" >"$W/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
for _ in $(seq 100); do [[ -s $W/mock/ready.json ]] && break; sleep 0.1; done
[[ -s $W/mock/ready.json ]] || { echo "the mock did not start:" >&2; cat "$W/mock.log" >&2; exit 1; }
ready() { "$PY" -c "import json,sys; r=json.load(open('$W/mock/ready.json')); print($1)"; }
MOCK_RFC=$(ready "r['directories']['rfc8555-bench']")
MOCK_INC=$(ready "r['directories']['incommon-bench']")
MOCK_CA=$(ready "r['ca_bundle']")
KID=$(ready "r['demo']['eab_kid']")
ready "r['demo']['eab_hmac_key']" >"$W/hmac"
chmod 600 "$W/hmac"

# ------------------------------------------------------------------ Pebble
mkdir -p "$W/pebble"
pebble_tls_cert "$W/pebble" bench-vs-pebble
PEBBLE_PORT=$(free_port)
pebble_config "$W/pebble.json" "$W/pebble" "$PEBBLE_PORT" "$(free_port)" "$(free_port)" "$(free_port)" \
    "$KID" "$(cat "$W/hmac")"
start_pebble() {
    PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
        pebble -config "$W/pebble.json" >>"$W/pebble.log" 2>&1 &
    PEBBLE_PID=$!
    PIDS+=("$PEBBLE_PID")
    pebble_wait_up "$PEBBLE_DIR" "$W/pebble/ca.pem" "$W/pebble.log" || exit 1
}
PEBBLE_DIR="https://127.0.0.1:$PEBBLE_PORT/dir"
start_pebble

# ------------------------------------------------------------------ the runs
bench() { # label directory ca pid round [clients]
    local out="$W/$1-$5.json" clients=${6:-$CONC}
    echo "  round $5: $1 ($SECS s, $clients clients)" >&2
    local prefix=(${DRIVER_PREFIX:-})
    "${prefix[@]}" "$BIN" bench --directory "$2" --ca-file "$3" --pid "$4" \
        --eab-kid "$KID" --eab-hmac-key-file "$W/hmac" \
        --concurrency "$clients" --duration "$SECS" --cert-key "$CERT_KEY" --accounts "$ACCOUNTS" \
        --request-timeout 10 --json --quiet >"$out" || [[ -s $out ]] ||
        { echo "bench against $1 failed" >&2; exit 1; }
}
bench_pebble() { # round
    bench pebble "$PEBBLE_DIR" "$W/pebble/ca.pem" "$PEBBLE_PID" "$1"
    if grep -q '"transport: timeout"' "$W/pebble-$1.json"; then
        echo "  Pebble stopped answering (its 2.4.0 store deadlocks under concurrent clients): restarting it" >&2
        kill "$PEBBLE_PID" 2>/dev/null || true
        wait "$PEBBLE_PID" 2>/dev/null || true
        start_pebble
    fi
}
echo "bench-vs-pebble: $ROUNDS rounds of $SECS s per server, alternating (uptime: $(uptime | sed 's/.*load/load/'))" >&2
for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then
        bench_pebble "$round"
        bench mock-rfc8555 "$MOCK_RFC" "$MOCK_CA" "$MOCK_PID" "$round"
    else
        bench mock-rfc8555 "$MOCK_RFC" "$MOCK_CA" "$MOCK_PID" "$round"
        bench_pebble "$round"
    fi
    bench mock-incommon "$MOCK_INC" "$MOCK_CA" "$MOCK_PID" "$round"
done
if (( SAT_CONC > 0 )); then
    bench mock-saturation "$MOCK_RFC" "$MOCK_CA" "$MOCK_PID" 1 "$SAT_CONC"
    # The same with the mock on CPU 1 alone and the driver on CPU 0: the server's issuances per
    # second on one core, to set against the crypto bound (docs/performance.md).
    # Skipped where CPUs 0 and 1 are not both ours (a cpuset); the mask is put back after.
    if command -v taskset >/dev/null && taskset -c 0,1 true 2>/dev/null; then
        mask=$(taskset -p "$MOCK_PID" | awk '{print $NF}')
        taskset -a -p -c 1 "$MOCK_PID" >/dev/null
        DRIVER_PREFIX="taskset -c 0" bench mock-one-core "$MOCK_RFC" "$MOCK_CA" "$MOCK_PID" 1 "$SAT_CONC"
        taskset -a -p "$mask" "$MOCK_PID" >/dev/null
    fi
fi

"$PY" - "$W" "$ROUNDS" "$SAT_CONC" <<'EOF'
import os
import json, statistics, sys
w, rounds, sat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(label):
    return [json.load(open(f"{w}/{label}-{r}.json")) for r in range(1, rounds + 1)]
def median(runs, f):
    vals = [f(r) for r in runs if f(r) is not None]
    return statistics.median(vals) if vals else None
def p99(run, ep):
    return next((l["p99_ms"] for l in run["latency"] if l["endpoint"] == ep), None)
res = {k: load(k) for k in ("pebble", "mock-rfc8555", "mock-incommon")}
if sat > 0:
    res[f"mock-rfc8555@{sat}"] = [json.load(open(f"{w}/mock-saturation-1.json"))]
    if os.path.exists(f"{w}/mock-one-core-1.json"):
        res[f"  on 1 core"] = [json.load(open(f"{w}/mock-one-core-1.json"))]
first = res["pebble"][0]
print(f"bench-vs-pebble: {first['concurrency']} clients, accounts {first['accounts']}, "
      f"account key {first['account_key']}, certificate key {first['cert_key']}, EAB on, "
      f"{rounds} alternating rounds, medians")
print(f"{'server':<15}{'issuances/s':>12}{'requests/s':>12}{'req/iss':>9}{'failed':>8}"
      f"{'CPU us/iss':>12}{'RSS MiB':>9}{'max p99 ms':>12}")
for label, runs in res.items():
    ips = median(runs, lambda r: r["issuances_per_second"])
    rps = median(runs, lambda r: r["requests_per_second"])
    rpi = median(runs, lambda r: r["requests_per_issuance"])
    failed = sum(r["failed"] for r in runs)
    cpu = median(runs, lambda r: (r.get("server") or {}).get("cpu_us_per_issuance"))
    rss = runs[-1]["server"]["after"]["rss_kib"] / 1024 if runs[-1].get("server") else float("nan")
    worst = median(runs, lambda r: max(l["p99_ms"] for l in r["latency"]))
    print(f"{label:<15}{ips:>12.1f}{rps:>12.0f}{rpi:>9.2f}{failed:>8}"
          f"{(cpu or float('nan')):>12.0f}{rss:>9.1f}{worst:>12.2f}")
    errors = {}
    for r in runs:
        for k, n in r["errors"].items():
            errors[k] = errors.get(k, 0) + n
    for k, n in sorted(errors.items()):
        print(f"{'':<15}error x{n}: {k}")
    if label == "pebble" and any("timeout" in k for k in errors):
        print(f"{'':<15}(Pebble 2.4.0 deadlocked: its rounds with timeouts understate it)")
peb = median(res["pebble"], lambda r: r["issuances_per_second"])
mock = median(res["mock-rfc8555"], lambda r: r["issuances_per_second"])
pcpu = median(res["pebble"], lambda r: (r.get("server") or {}).get("cpu_us_per_issuance"))
mcpu = median(res["mock-rfc8555"], lambda r: (r.get("server") or {}).get("cpu_us_per_issuance"))
ratio = f"{mock / peb:.2f}x" if peb else "n/a (Pebble issued nothing)"
print(f"ratio mock(rfc8555)/Pebble, issuances/s at {first['concurrency']} clients: "
      f"{mock:.1f} / {peb:.1f} = {ratio}")
if pcpu and mcpu:
    print(f"ratio Pebble/mock, server CPU per issuance: {pcpu:.0f} us / {mcpu:.0f} us = {pcpu / mcpu:.2f}x")
if "  on 1 core" in res:
    one = res["  on 1 core"][0]
    print(f"the mock on one dedicated core: {one['issuances_per_second']:.0f} issuances/s "
          f"(compare with the crypto bound per core: docs/performance.md)")
EOF

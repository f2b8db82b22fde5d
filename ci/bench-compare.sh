#!/usr/bin/env bash
# Two builds of the mock side by side, in one run: did a change make the server slower?
#
#   bash ci/bench-compare.sh BEFORE_BIN AFTER_BIN
#
# e.g. build the older commit in a worktree (cargo build --release -p acme-harness) and pass its
# target/release/acme-harness as BEFORE_BIN. Each binary reads the profiles of its own tree (the
# profile format changes over time): BEFORE_BIN's from BEFORE_TREE (default: the tree two levels
# above it, i.e. the worktree of BEFORE_TREE/target/release/acme-harness), AFTER_BIN's from
# this checkout. Each binary serves the rfc8555 profile in its
# always-valid mode (order.danger_skip_validation, as bench-vs-pebble.sh) and the InCommon ECC
# profile without the processing wait, on 127.0.0.1 with ports from the OS. AFTER_BIN's
# `bench` drives both, so only the servers differ; the rounds alternate which goes first, so a
# machine that gets busier or quieter favours neither. Prints medians and the ratio after/before.
#
# Settings (environment): BENCH_ROUNDS (default 3), BENCH_SECONDS (per bench, default 8),
# BENCH_CONCURRENCY (clients, default 3). Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# == 2 ]] || { echo "usage: bash ci/bench-compare.sh BEFORE_BIN AFTER_BIN" >&2; exit 2; }
BEFORE=$1 AFTER=$2
for bin in "$BEFORE" "$AFTER"; do
    [[ -x $bin ]] || { echo "bench-compare: $bin is not an executable (cargo build --release -p acme-harness)" >&2; exit 2; }
done
ROUNDS=${BENCH_ROUNDS:-3} SECS=${BENCH_SECONDS:-8} CONC=${BENCH_CONCURRENCY:-3}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

W=$(mktemp -d /tmp/bench-compare.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

BEFORE_TREE=${BEFORE_TREE:-$(cd "$(dirname "$BEFORE")/../.." && pwd)}
[[ -f $BEFORE_TREE/fixtures/profiles/rfc8555.toml ]] ||
    { echo "bench-compare: no fixtures/profiles in $BEFORE_TREE: set BEFORE_TREE to BEFORE_BIN's checkout" >&2; exit 2; }
profiles() { # tree side
    sed -e 's/^name = .*/name = "rfc8555-bench"/' \
        -e 's|^directory_path = .*|directory_path = "/v2/rfc8555bench"|' \
        -e '/^danger_skip_validation/d' \
        -e 's/^\[order\]$/[order]\ndanger_skip_validation = true/' \
        "$1/fixtures/profiles/rfc8555.toml" >"$W/$2-rfc8555-bench.toml"
    sed -e 's/^name = .*/name = "incommon-bench"/' \
        -e 's|^directory_path = .*|directory_path = "/v2/InCommonBench"|' \
        -e 's/^processing_ms = .*/processing_ms = 0/' \
        "$1/fixtures/profiles/sectigo-incommon-ecc-ov.toml" >"$W/$2-incommon-bench.toml"
}
profiles "$BEFORE_TREE" before
profiles . after

declare -A PID DIR_RFC DIR_INC CA KID
for side in before after; do
    bin=$BEFORE; [[ $side == after ]] && bin=$AFTER
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$W/$side" \
        --profile "$W/$side-rfc8555-bench.toml" --profile "$W/$side-incommon-bench.toml" \
        --http-01-port "$(free_port)" --tls-alpn-01-port "$(free_port)" >"$W/$side.log" 2>&1 &
    PID[$side]=$!
    PIDS+=("$!")
    for _ in $(seq 150); do [[ -s $W/$side/ready.json ]] && break; sleep 0.1; done
    [[ -s $W/$side/ready.json ]] || { echo "bench-compare: $bin did not start:" >&2; cat "$W/$side.log" >&2; exit 1; }
    ready() { "$PY" -c "import json; r=json.load(open('$W/$side/ready.json')); print($1)"; }
    DIR_RFC[$side]=$(ready "r['directories']['rfc8555-bench']")
    DIR_INC[$side]=$(ready "r['directories']['incommon-bench']")
    CA[$side]=$(ready "r['ca_bundle']")
    KID[$side]=$(ready "r['demo']['eab_kid']")
    ready "r['demo']['eab_hmac_key']" >"$W/$side.hmac"
    chmod 600 "$W/$side.hmac"
done

bench() { # side profile round
    local dir=${DIR_RFC[$1]}
    [[ $2 == incommon ]] && dir=${DIR_INC[$1]}
    echo "  round $3: $1, $2 ($SECS s, $CONC clients)" >&2
    "$AFTER" bench --directory "$dir" --ca-file "${CA[$1]}" --pid "${PID[$1]}" \
        --eab-kid "${KID[$1]}" --eab-hmac-key-file "$W/$1.hmac" \
        --concurrency "$CONC" --duration "$SECS" --request-timeout 10 --json --quiet \
        >"$W/$1-$2-$3.json" || { echo "bench-compare: bench against $1 ($2) failed" >&2; exit 1; }
}
echo "bench-compare: $ROUNDS rounds of $SECS s per server and profile, alternating (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
for round in $(seq "$ROUNDS"); do
    order=(before after)
    (( round % 2 )) || order=(after before)
    for profile in rfc8555 incommon; do
        for side in "${order[@]}"; do bench "$side" "$profile" "$round"; done
    done
done

"$PY" - "$W" "$ROUNDS" "$BEFORE" "$AFTER" <<'PYEOF'
import json, statistics, sys
w, rounds, before, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def runs(side, profile):
    return [json.load(open(f"{w}/{side}-{profile}-{r}.json")) for r in range(1, rounds + 1)]
def med(rs, f):
    vals = [v for v in (f(r) for r in rs) if v is not None]
    return statistics.median(vals) if vals else float("nan")
print(f"bench-compare: before = {before}\n               after  = {after}")
print(f"{'server':<20}{'issuances/s':>12}{'req/s':>9}{'failed':>8}{'CPU us/iss':>12}{'max p99 ms':>12}")
for profile in ("rfc8555", "incommon"):
    ips = {}
    for side in ("before", "after"):
        rs = runs(side, profile)
        ips[side] = med(rs, lambda r: r["issuances_per_second"])
        print(f"{side + ' ' + profile:<20}{ips[side]:>12.1f}"
              f"{med(rs, lambda r: r['requests_per_second']):>9.0f}{sum(r['failed'] for r in rs):>8}"
              f"{med(rs, lambda r: (r.get('server') or {}).get('cpu_us_per_issuance')):>12.0f}"
              f"{med(rs, lambda r: max(l['p99_ms'] for l in r['latency'])):>12.2f}")
    print(f"{'':<20}after/before issuances/s: {ips['after'] / ips['before']:.2f}x")
PYEOF

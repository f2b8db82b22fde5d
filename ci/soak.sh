#!/usr/bin/env bash
# Soak test: the bench drives the mock with fault injection on for SOAK_SECONDS (default 60;
# the figures in docs/performance.md come from SOAK_SECONDS=300). Passes when resident memory stays flat
# over the second half of the run and every 5xx the clients saw was one the fault plan injected.
#
#   ACME_HARNESS_BIN=target/release/acme-harness SOAK_SECONDS=300 bash ci/soak.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$(realpath "${ACME_HARNESS_BIN:-target/debug/acme-harness}")
SECS=${SOAK_SECONDS:-60}
RATE=${SOAK_RATE:-150}
W=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
echo "soak: $SECS s at $RATE issuances/s, work dir $W"

# A benchmark copy of rfc8555 (challenges answered without validation), and a fault plan.
sed -e '/^danger_skip_validation/d' -e 's/^\[order\]$/[order]\ndanger_skip_validation = true/' \
    -e 's/^name = "rfc8555"/name = "soak"/' -e 's#^directory_path = .*#directory_path = "/v2/soak"#' \
    fixtures/profiles/rfc8555.toml >"$W/soak.toml"
cat >"$W/faults.toml" <<'PLAN'
[[rule]]
endpoint = "any"
fault = "badNonce"
probability = 0.003
[[rule]]
endpoint = "newOrder"
fault = "serviceUnavailable"
probability = 0.003
retry_after = 1
[[rule]]
endpoint = "finalize"
fault = "serverInternal"
probability = 0.003
[[rule]]
endpoint = "order"
fault = "gatewayTimeout"
probability = 0.002
[[rule]]
endpoint = "authz"
fault = "slow"
delay_ms = 50
probability = 0.01
PLAN

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/mock" --profile "$W/soak.toml" \
    --faults "$W/faults.toml" --seed 11 --max-orders 5000 >"$W/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -s "$W/mock/ready.json" ] && jq -e . "$W/mock/ready.json" >/dev/null 2>&1 && break; sleep 0.1; done
DIR=$(jq -r '.directories.soak' "$W/mock/ready.json")
jq -r .demo.eab_hmac_key "$W/mock/ready.json" >"$W/hmac"
chmod 600 "$W/hmac"

# Resident memory every 5 s while the bench runs.
( while kill -0 $PID 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$PID/status; sleep 5; done ) >"$W/rss.txt" &
SAMPLER=$!
"$BIN" bench --directory "$DIR" --ca-file "$W/mock/ca-bundle.pem" \
    --eab-kid "$(jq -r .demo.eab_kid "$W/mock/ready.json")" --eab-hmac-key-file "$W/hmac" \
    --accounts per-client --concurrency 16 --rate "$RATE" --duration "$SECS" --pid $PID \
    --quiet --json >"$W/bench.json" 2>"$W/bench.err" || true
kill $SAMPLER 2>/dev/null || true
curl -s --cacert "$W/mock/ca-bundle.pem" -H "Authorization: Bearer $(jq -r .admin_token "$W/mock/ready.json")" \
    "$(jq -r .admin_url "$W/mock/ready.json")/faults/events" >"$W/events.json"

python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
bench = json.load(open(f"{w}/bench.json"))
events = json.load(open(f"{w}/events.json"))["events"]
rss = [int(x) for x in open(f"{w}/rss.txt").read().split()]
injected = {}
for e in events:
    injected[e["fault"]] = injected.get(e["fault"], 0) + 1
fives = {k: n for k, n in bench["errors"].items() if "serverInternal" in k or "HTTP 5" in k}
seen_5xx = sum(fives.values())
allowed_5xx = sum(injected.get(k, 0) for k in ("serverInternal", "badGateway", "serviceUnavailable", "gatewayTimeout"))
half = rss[len(rss) // 2:]
growth = (max(half) - min(half)) / 1024
print(f"issuances: {bench['issuances']} completed, {bench['failed']} failed, {bench['issuances_per_second']:.0f}/s")
print(f"faults injected: {injected}")
print(f"errors seen by the clients: {bench['errors']}")
print(f"resident memory (MiB), every 5 s: {[round(r / 1024) for r in rss]}")
checks = [
    (len(events) < 10000, f"fault log not truncated ({len(events)} events)"),
    (seen_5xx <= allowed_5xx, f"every 5xx was injected ({seen_5xx} seen, {allowed_5xx} injected)"),
    (growth < 32, f"memory flat over the second half (spread {growth:.1f} MiB)"),
    (bench["issuances"] > 0, "certificates were issued"),
]
passed = sum(ok for ok, _ in checks)
for ok, what in checks:
    print(("PASS " if ok else "FAIL ") + what)
print(f"{passed} passed, {len(checks) - passed} failed")
sys.exit(0 if passed == len(checks) else 1)
PY

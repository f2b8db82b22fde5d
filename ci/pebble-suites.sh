#!/usr/bin/env bash
# Outside client projects' own Pebble test suites, run UNCHANGED: first against Debian's Pebble
# (/usr/bin/pebble, /usr/bin/pebble-challtestsrv), then with acme-harness standing in for both
# binaries (a directory first on PATH whose `pebble` and `pebble-challtestsrv` are links to
# the acme-harness binary), and the results side by side. Fails when a test that passes
# against Debian's Pebble fails against acme-harness, unless ci/pebble-suites-exceptions.tsv
# lists it with the reason.
#
# Suites, each the published crate from crates.io (`cargo fetch`, pinned), unpacked as served:
#   instant-acme  its tests/pebble.rs (`cargo test -- --ignored`, as its docs say), with the
#                 crate's optional features x509-parser and time so that its ARI and profile
#                 tests run too. Each test starts `$PEBBLE -config FILE -dnsserver [::1]:P
#                 -strict` and `$CHALLTESTSRV -management :P -dnsserver :P ... -doh ""`: flags
#                 of Pebble >= 2.5. Debian's pebble-challtestsrv 2.4 calls its DNS flag -dns01
#                 and has no -doh, so there every test that needs a challenge answered fails.
#   acme2         its unit tests (`cargo test`), which expect what its docker-compose.yml
#                 starts: `pebble -config pebble-config.json -strict -dnsserver ...:8053`
#                 (the crate's own config and certificates; here with localhost for 0.0.0.0)
#                 and pebble-challtestsrv with its default ports and `-defaultIPv6 ""`. The
#                 one test that talks to Let's Encrypt on the internet is skipped (--skip).
#
# Usage: ci/pebble-suites.sh
# Environment:
#   ACME_HARNESS_BIN       the acme-harness binary (default: target/debug/acme-harness)
#   PEBBLE_SUITES_WORKDIR  work dir, outside the repository (default: $TMPDIR/acme-harness-pebble-suites)
#   PEBBLE_SUITES_TIMEOUT  seconds allowed for one suite run against one server [900]
#   PEBBLE_SUITES          which suites (default: "instant-acme acme2")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/pebble.sh
. ci/lib/pebble.sh
PEBBLE_WHO=pebble-suites
pebble_loopback_env

BIN=${ACME_HARNESS_BIN:-$ROOT/target/debug/acme-harness}
# Outside the repository: cargo would take the crates for members of its workspace.
W=${PEBBLE_SUITES_WORKDIR:-${TMPDIR:-/tmp}/acme-harness-pebble-suites}
BUDGET=${PEBBLE_SUITES_TIMEOUT:-900}
SUITES=${PEBBLE_SUITES:-instant-acme acme2}
EXCEPTIONS=$ROOT/ci/pebble-suites-exceptions.tsv
declare -A VERSION=([instant-acme]=0.8.5 [acme2]=0.5.1)

for tool in pebble pebble-challtestsrv cargo tar curl jq; do
    command -v "$tool" >/dev/null || { echo "pebble-suites: $tool is missing (bash ci/install-clients.sh)" >&2; exit 1; }
done
mkdir -p "$W"
W=$(cd "$W" && pwd)

# fetch SUITE: the published crate, unpacked as crates.io serves it, into $W/SUITE.
fetch() {
    local suite=$1 version=${VERSION[$1]} stub=$W/fetch-$1
    mkdir -p "$stub/src"
    : >"$stub/src/lib.rs"
    cat >"$stub/Cargo.toml" <<TOML
[package]
name = "pebble-suites-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
$suite = "=$version"
[workspace]
TOML
    cargo fetch --quiet --manifest-path "$stub/Cargo.toml"
    local crate
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$suite-$version.crate" | head -n 1)
    [ -f "$crate" ] || { echo "pebble-suites: cargo fetch left no $suite-$version.crate" >&2; exit 1; }
    rm -rf "${W:?}/$suite"
    mkdir -p "$W/$suite"
    tar -xzf "$crate" -C "$W/$suite" --strip-components=1
}

# The suite's own test command, from the crate's directory (its files name paths relative to
# it), one target dir per suite.
suite_cargo() {
    local suite=$1
    shift
    (cd "$W/$suite" && CARGO_TARGET_DIR=$W/target-$suite cargo test --quiet --locked "$@")
}

build() {
    case $1 in
        instant-acme) suite_cargo instant-acme --features x509-parser,time --test pebble --no-run ;;
        acme2)
            # Its published Cargo.lock (2021) pins openssl-sys 0.9.60, which cannot build
            # against OpenSSL 3 (Debian 12's): the newest openssl of the same 0.10/0.9 range.
            (cd "$W/acme2" && cargo update --quiet -p openssl -p openssl-sys)
            suite_cargo acme2 --no-run
            ;;
    esac
}

# collect SUITE LABEL: "test<TAB>ok|FAILED" lines from the run's log.
collect() {
    local log=$W/$1.$2.log out=$W/$1.$2.results
    sed -n 's/^test \([A-Za-z0-9_:]*\) \.\.\. \(ok\|FAILED\)$/\1\t\2/p' "$log" | sort >"$out"
    if [ ! -s "$out" ]; then
        echo "pebble-suites: $1 against $2 reported no test; the end of its log:" >&2
        tail -n 30 "$log" >&2
    fi
}

PIDS=()
stop_servers() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap stop_servers EXIT

# run SUITE LABEL: with `pebble` and `pebble-challtestsrv` taken from PATH.
run() {
    local suite=$1 label=$2 log=$W/$1.$2.log
    echo "pebble-suites: $suite ${VERSION[$suite]} against $label (log: $log)"
    case $suite in
        instant-acme)
            # Four at a time: each test starts its own pair of servers on ports the suite
            # counts up from 5555.
            PEBBLE=$(command -v pebble) CHALLTESTSRV=$(command -v pebble-challtestsrv) \
                timeout "$BUDGET" bash -c 'cd "$0" && CARGO_TARGET_DIR=$1 cargo test --locked --features x509-parser,time --test pebble -- --ignored --test-threads=4' \
                "$W/instant-acme" "$W/target-instant-acme" >"$log" 2>&1 || true
            ;;
        acme2)
            local dir=$W/acme2 dns_flag=-dnsserver
            # Debian's 2.4 names the DNS listener flag -dns01.
            pebble-challtestsrv -h 2>&1 | grep -q -- '-dnsserver' || dns_flag=-dns01
            # Its own config, on localhost instead of every interface.
            jq '.pebble.listenAddress = "localhost:14000" | .pebble.managementListenAddress = "localhost:15000"' \
                "$dir/pebble-config.json" >"$W/acme2-pebble-config.json"
            pebble-challtestsrv -defaultIPv6 "" -defaultIPv4 127.0.0.1 -management 127.0.0.1:8055 \
                "$dns_flag" 127.0.0.1:8053 -http01 127.0.0.1:5002 -tlsalpn01 127.0.0.1:5001 \
                -https01 "" >"$W/acme2.$label.challtestsrv.log" 2>&1 &
            PIDS+=($!)
            (cd "$dir" && PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 exec pebble \
                -config "$W/acme2-pebble-config.json" -strict -dnsserver 127.0.0.1:8053) \
                >"$W/acme2.$label.pebble.log" 2>&1 &
            PIDS+=($!)
            if pebble_wait_up https://localhost:14000/dir "$dir/certs/pebble.minica.pem" \
                "$W/acme2.$label.pebble.log" "$W/acme2.$label.challtestsrv.log"; then
                timeout "$BUDGET" bash -c 'cd "$0" && CARGO_TARGET_DIR=$1 cargo test --locked -- --skip letsencrypt' \
                    "$dir" "$W/target-acme2" >"$log" 2>&1 || true
            else
                : >"$log"
            fi
            stop_servers
            ;;
    esac
    collect "$suite" "$label"
}

for suite in $SUITES; do
    echo "pebble-suites: fetching $suite ${VERSION[$suite]} from crates.io and building its tests"
    fetch "$suite"
    build "$suite"
done

for suite in $SUITES; do
    PATH="/usr/bin:$PATH" run "$suite" debian
done

# acme-harness standing in for both binaries, through links with Pebble's names.
have_harness=0
if [ -x "$BIN" ] && "$BIN" pebble -version >/dev/null 2>&1; then
    have_harness=1
    mkdir -p "$W/bin"
    ln -sfn "$BIN" "$W/bin/pebble"
    ln -sfn "$BIN" "$W/bin/pebble-challtestsrv"
    if ! "$W/bin/pebble-challtestsrv" -h 2>&1 | grep -q -- '-management'; then
        # Until acme-harness answers as pebble-challtestsrv, Debian's stands beside it.
        rm -f "$W/bin/pebble-challtestsrv"
        echo "pebble-suites: $BIN does not answer as pebble-challtestsrv: Debian's is used with it" >&2
    fi
    for suite in $SUITES; do
        PATH="$W/bin:$PATH" run "$suite" acme-harness
    done
else
    echo "pebble-suites: $BIN has no 'pebble' command: the acme-harness column is skipped" >&2
    for suite in $SUITES; do
        : >"$W/$suite.acme-harness.results"
    done
fi

# Side by side, and the regressions.
status=0
summary=()
for suite in $SUITES; do
    deb=$W/$suite.debian.results
    har=$W/$suite.acme-harness.results
    printf '\n%-40s %-20s %s\n' "$suite ${VERSION[$suite]} test" "Debian Pebble 2.4" "acme-harness"
    cut -f1 "$deb" "$har" | sort -u | while read -r t; do
        d=$(awk -F'\t' -v t="$t" '$1 == t {print $2}' "$deb")
        h=$(awk -F'\t' -v t="$t" '$1 == t {print $2}' "$har")
        printf '%-40s %-20s %s\n' "$t" "${d:--}" "${h:--}"
    done
    dp=$(grep -c $'\tok$' "$deb" || true)
    dt=$(wc -l <"$deb")
    hp=$(grep -c $'\tok$' "$har" || true)
    ht=$(wc -l <"$har")
    summary+=("$suite ${VERSION[$suite]}: $dp of $dt tests pass against Debian's Pebble 2.4, $hp of $ht against acme-harness")
    [ "$dt" -gt 0 ] || { echo "pebble-suites: $suite ran no test against Debian's Pebble" >&2; status=1; }
    if [ "$have_harness" = 1 ]; then
        [ "$ht" -gt 0 ] || { echo "pebble-suites: $suite ran no test against acme-harness" >&2; status=1; }
        while IFS=$'\t' read -r t r; do
            [ "$r" = ok ] || continue
            grep -q "^$t"$'\tok$' "$har" && continue
            if grep -q "^$suite"$'\t'"$t"$'\t' "$EXCEPTIONS" 2>/dev/null; then
                echo "pebble-suites: $suite $t fails against acme-harness: a documented exception"
            else
                echo "pebble-suites: $suite $t passes against Debian's Pebble but not against acme-harness (log: $W/$suite.acme-harness.log)" >&2
                status=1
            fi
        done <"$deb"
    fi
done
echo
printf '%s\n' "${summary[@]}"
exit "$status"

#!/usr/bin/env bash
# Install the real ACME clients the matrix runs, Pebble (ci/pebble-client.sh) and the tools vet needs, from Debian's packages.
# Idempotent: does nothing when every package is already installed. Must run as root.
set -euo pipefail

# chromium: the HTML report's layout test and the screenshot CI keeps of it.
PACKAGES=(certbot lego dehydrated uacme pebble openssl jq curl python3 procps util-linux strace chromium)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-clients: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-clients: missing packages (${missing[*]}) and not root" >&2
    exit 1
fi

echo "install-clients: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! apt-get update -q >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-clients: apt-get update failed" >&2
    exit 1
fi
if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-clients: apt-get install failed" >&2
    exit 1
fi

for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || { echo "install-clients: $p still not installed" >&2; exit 1; }
done
echo "install-clients: done"

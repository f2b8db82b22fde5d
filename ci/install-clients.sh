#!/usr/bin/env bash
# Install the real ACME clients the matrix runs (fixtures/clients/*.toml), Pebble
# (ci/pebble-client.sh) and the tools vet needs:
#   - from Debian: certbot 2.1, lego, dehydrated, uacme, Caddy 2.6.2, acme-tiny (and Node.js
#     with npm where the machine has no node);
#   - certbot from PyPI (the current release, pinned with every dependency in
#     ci/certbot-pypi-constraints.txt) in its own virtualenv, /opt/acme-harness/certbot-pypi,
#     beside Debian's certbot;
#   - the npm library acme-client (ci/node-acme-client/package-lock.json, `npm ci`) in
#     /opt/acme-harness/node-acme-client.
# Idempotent: does nothing for what is already there. Must run as root for anything missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OPT=/opt/acme-harness
# chromium: the HTML report's layout test and the screenshot CI keeps of it; chromium-driver:
# the web console's browser test (WebDriver).
# bubblewrap: the sandbox vet and the matrix run every client in (private network, filesystem
# view); strace: the trace of what each client touched.
PACKAGES=(certbot lego dehydrated uacme caddy acme-tiny pebble openssl jq curl python3 python3-venv procps util-linux strace bubblewrap chromium chromium-driver)
# Debian's nodejs only where no node is installed (a machine may bring its own).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-clients: $1 missing and not root" >&2
        exit 1
    fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
    local what=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "install-clients: $what failed" >&2
        exit 1
    fi
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    need_root "packages (${missing[*]})"
    echo "install-clients: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    run "apt-get update" apt-get update -q
    run "apt-get install" apt-get install -y -q --no-install-recommends "${missing[@]}"
    for p in "${PACKAGES[@]}"; do
        installed "$p" || { echo "install-clients: $p still not installed" >&2; exit 1; }
    done
fi

# Debian's caddy package enables a caddy.service that serves :80 on every interface. The
# harness starts its own Caddy (fixtures/clients/caddy-run.sh) on loopback only: stop it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet caddy 2>/dev/null; then
    echo "install-clients: stopping and disabling caddy.service (it listens on every interface)"
    systemctl disable --now caddy >/dev/null 2>&1 || true
fi

# certbot from PyPI, in its own virtualenv.
want_certbot=$(sed -n 's/^certbot==//p' "$HERE/certbot-pypi-constraints.txt")
have_certbot=$("$OPT/certbot-pypi/bin/certbot" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have_certbot" != "$want_certbot" ]; then
    need_root "certbot $want_certbot from PyPI"
    echo "install-clients: certbot $want_certbot from PyPI into $OPT/certbot-pypi"
    mkdir -p "$OPT"
    rm -rf "$OPT/certbot-pypi"
    run "python3 -m venv" /usr/bin/python3 -m venv "$OPT/certbot-pypi"
    run "pip install certbot" "$OPT/certbot-pypi/bin/pip" install -q --disable-pip-version-check \
        -c "$HERE/certbot-pypi-constraints.txt" "certbot==$want_certbot"
    have_certbot=$("$OPT/certbot-pypi/bin/certbot" --version | awk '{print $2}')
    [ "$have_certbot" = "$want_certbot" ] || { echo "install-clients: certbot from PyPI reports $have_certbot" >&2; exit 1; }
fi

# acme-client from npm, exactly as locked.
lock="$HERE/node-acme-client/package-lock.json"
if ! cmp -s "$lock" "$OPT/node-acme-client/package-lock.json" \
    || [ ! -f "$OPT/node-acme-client/node_modules/acme-client/package.json" ]; then
    need_root "acme-client from npm"
    echo "install-clients: acme-client from npm into $OPT/node-acme-client"
    rm -rf "$OPT/node-acme-client"
    mkdir -p "$OPT/node-acme-client"
    cp "$HERE/node-acme-client/package.json" "$lock" "$OPT/node-acme-client/"
    run "npm ci" npm ci --prefix "$OPT/node-acme-client" --omit=dev --no-audit --no-fund
fi
node -e "require('$OPT/node-acme-client/node_modules/acme-client')" \
    || { echo "install-clients: acme-client does not load" >&2; exit 1; }

echo "install-clients: all clients present"

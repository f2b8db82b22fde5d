# Shared by the scripts that run Pebble from Debian (pebble-client.sh, conformance-pebble.sh,
# bench-vs-pebble.sh): loopback-only environment, a throwaway TLS certificate (Debian's Pebble
# ships none), a random EAB key, the config file, and waiting until Pebble answers.
# Source it; every function prints its errors with the caller's name ($PEBBLE_WHO).

# Nothing from the environment may send traffic off the machine or change trust.
pebble_loopback_env() {
    unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE \
        http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
    export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
}

# pebble_tls_cert DIR LABEL: DIR/ca.pem (trust this), DIR/cert.pem and DIR/key.pem (for
# 127.0.0.1 and localhost), valid two days.
pebble_tls_cert() {
    local dir=$1 label=$2
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$label test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout "$dir/key.pem" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
}

# A random 32-byte HMAC key, base64url without padding, not starting with `-` (argument
# parsers would read such a key as an option).
pebble_random_hmac() {
    local key=-
    while [ "${key#-}" != "$key" ]; do
        key=$(openssl rand 32 | base64 -w0 | tr '+/' '-_' | tr -d '=')
    done
    echo "$key"
}

# pebble_config FILE DIR PORT MGMT_PORT HTTP_PORT TLS_PORT [EAB_KID EAB_HMAC]: a config on
# 127.0.0.1 with DIR's certificate; with a key id and key, EAB is required. Written 0600.
pebble_config() {
    local file=$1 dir=$2 port=$3 mgmt=$4 http=$5 tls=$6 kid=${7:-} hmac=${8:-}
    local eab='"externalAccountBindingRequired":false'
    if [ -n "$kid" ]; then
        eab="\"externalAccountBindingRequired\":true,\"externalAccountMACKeys\":{\"$kid\":\"$hmac\"}"
    fi
    (
        umask 077
        cat >"$file" <<JSON
{"pebble":{"listenAddress":"127.0.0.1:$port","managementListenAddress":"127.0.0.1:$mgmt",
 "certificate":"$dir/cert.pem","privateKey":"$dir/key.pem","httpPort":$http,"tlsPort":$tls,
 "ocspResponderURL":"",$eab}}
JSON
    )
}

# pebble_wait_up URL CA_FILE LOG...: polls the directory for up to 10 s; on failure prints the
# logs and returns 1.
pebble_wait_up() {
    local url=$1 ca=$2
    shift 2
    for _ in $(seq 1 100); do
        if curl -sf --cacert "$ca" "$url" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "${PEBBLE_WHO:-pebble}: Pebble did not come up at $url; its log:" >&2
    cat "$@" >&2
    return 1
}

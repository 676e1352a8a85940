#!/usr/bin/env bash
# Makes the certificates the C tests need in DIR:
#   ca.crt ca.key              test CA
#   server.crt server.key      signed by ca, SAN localhost, 127.0.0.1, ::1
#   client.crt client.key      signed by ca, clientAuth
#   other-ca.crt other-ca.key  an unrelated CA (for the negative test)
# Uses the project's scripts/mkcerts when it exists and makes these files;
# otherwise generates them here with the openssl command line tool.
set -euo pipefail

dir=${1:?usage: gencerts.sh DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
needed="ca.crt server.crt server.key client.crt client.key other-ca.crt"
mkdir -p "$dir"

have_all() {
    for f in $needed; do [ -s "$dir/$f" ] || return 1; done
}

if [ -x "$top/scripts/mkcerts" ] && [ -z "${PCP_SECURE_OWN_CERTS:-}" ]; then
    if "$top/scripts/mkcerts" "$dir" >"$dir/mkcerts.log" 2>&1 && have_all; then
        echo "certificates made by scripts/mkcerts in $dir"
        exit 0
    fi
    echo "gencerts.sh: scripts/mkcerts did not make all of: $needed (see $dir/mkcerts.log); using openssl directly" >&2
fi

command -v openssl >/dev/null || { echo "gencerts.sh: openssl is not installed" >&2; exit 1; }

cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 365 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$1.crt"
}

leaf() { # name subject extfile
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -sha256 -days 365 -extfile "$3" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
}

ca ca "libpcp_secure test CA"
ca other-ca "some other CA"

cat > server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EOF
cat > client.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
leaf server localhost server.ext
leaf client "pcp test client" client.ext
rm -f server.ext client.ext ca.srl

have_all || { echo "gencerts.sh: failed to make $needed in $dir" >&2; exit 1; }
echo "certificates made with openssl in $dir"

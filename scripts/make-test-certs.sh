#!/bin/sh
# Test-only certificates for test/pipeline-tls.test.ts (committed under test/data/tls/; the tests never run
# openssl). A CA, a second CA that signs nothing the stages trust, a server certificate for 127.0.0.1 /
# localhost, one for another address and a client certificate, all from the first CA, and a client
# certificate from the second.
# Valid for 100 years. These keys are public: never use them outside the tests.
set -eu
OUT=${1:-test/data/tls}
DAYS=36500
mkdir -p "$OUT"
cd "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ca() { # name subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $DAYS \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name subject ca extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$tmp/$1.csr"
  printf '%s\n' "$4" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days $DAYS -extfile "$tmp/$1.ext" -out "$1.crt"
}

ca ca 'grok-ts test CA'
ca other-ca 'grok-ts other test CA'
# A stage: serves (its --listen address) and dials the next stage, so one certificate does both.
leaf server 'grok-ts test stage' ca 'subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth'
# The same, but for an address the tests never dial: the name check must fail.
leaf wrong-name 'grok-ts test stage elsewhere' ca 'subjectAltName=IP:10.9.8.7,DNS:stage.example
extendedKeyUsage=serverAuth,clientAuth'
leaf client 'grok-ts test leader' ca 'extendedKeyUsage=clientAuth'
leaf other-client 'grok-ts test stranger' other-ca 'extendedKeyUsage=clientAuth'
# The CAs' keys are not needed by the tests: rerun the script for a new set.
rm -f ca.srl other-ca.srl ca.key other-ca.key

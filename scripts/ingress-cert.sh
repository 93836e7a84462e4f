#!/usr/bin/env bash
# A certificate authority of the test cluster's own and a server certificate it signs for
# the host name the ingress serves the release at, as cert-manager would make for a real
# one: <dir>/ca.crt (what the e2e suite trusts, SSL_CERT_FILE) and <dir>/tls.{crt,key}
# (the release's TLS Secret). Made once per <dir>; a cluster's teardown removes it.
# Usage: scripts/ingress-cert.sh DIR HOST
set -euo pipefail
dir=$1 host=$2
[[ -f $dir/tls.crt ]] && exit 0
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=aura test ingress CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout "$dir/tls.key" \
  -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$host" \
  > "$dir/tls.ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 7 -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
echo "ingress certificate for $host in $dir"

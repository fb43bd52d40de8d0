#!/usr/bin/env bash
# Makes a test CA and a serving certificate for stagegate's TLS listener,
# for the webhook in validating-webhook.yaml (docs/integrations/kubernetes.md).
#
#   examples/kubernetes/make-certs.sh [OUT]        (default OUT: ./stagegate-certs)
#
# Environment: SERVICE (default stagegate) and NAMESPACE (default stagegate)
# name the Service the API server calls; EXTRA_SANS adds subject names, e.g.
# EXTRA_SANS="IP:127.0.0.1,DNS:localhost" for a local test; DAYS (default 365).
#
# Writes OUT/ca.crt, OUT/ca.key (keep it offline: it can sign certificates
# the API server trusts), OUT/tls.crt, OUT/tls.key, and OUT/webhook.yaml:
# validating-webhook.yaml with caBundle filled in. For production use your
# cluster's issuer (cert-manager, say) instead; stagegate re-reads tls.crt
# and tls.key when they change, so renewals need no restart.
set -euo pipefail

out=${1:-stagegate-certs}
service=${SERVICE:-stagegate}
namespace=${NAMESPACE:-stagegate}
days=${DAYS:-365}
here=$(cd "$(dirname "$0")" && pwd)

command -v openssl >/dev/null || { echo "make-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$out"
umask 077

sans="DNS:${service},DNS:${service}.${namespace},DNS:${service}.${namespace}.svc,DNS:${service}.${namespace}.svc.cluster.local"
if [ -n "${EXTRA_SANS:-}" ]; then
    sans="${sans},${EXTRA_SANS}"
fi

# The CA: P-256, self-signed, allowed to sign certificates only.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/ca.key" 2>/dev/null
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" \
    -subj "/CN=stagegate admission test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.crt"

# The serving certificate: the Service's DNS names, for TLS servers only.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/tls.key" 2>/dev/null
openssl req -new -key "$out/tls.key" -subj "/CN=${service}.${namespace}.svc" -out "$out/tls.csr"
cat >"$out/tls.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${sans}
EXT
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days "$days" -sha256 -extfile "$out/tls.ext" -out "$out/tls.crt" 2>/dev/null
rm -f "$out/tls.csr" "$out/tls.ext" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/tls.crt"

bundle=$(base64 -w0 <"$out/ca.crt")
sed "s|CA_BUNDLE_BASE64|${bundle}|" "$here/validating-webhook.yaml" >"$out/webhook.yaml"
chmod 644 "$out/webhook.yaml"

echo "CA:          $out/ca.crt"
echo "certificate: $out/tls.crt (${sans})"
echo "key:         $out/tls.key"
echo "webhook:     $out/webhook.yaml (caBundle filled in)"

#!/usr/bin/env bash
# Builds the stagegate OCI image with buildah (docs/deploy.md, "The image").
#
# FROM scratch: a static binary (x86_64-unknown-linux-musl, so no libc in
# the image), the CA certificates of the build machine (remote bundle
# sources and webhooks verify TLS), /etc/passwd and /etc/group naming the
# numeric user, and the data volume owned by that user. No shell, no
# package manager. No RUN step either, so building needs no container
# runtime (and no cgroups): only buildah's storage.
#
# Output: target/image/stagegate.oci.tar (an oci-archive).
set -euo pipefail
cd "$(dirname "$0")/../.."

target_dir="${CARGO_TARGET_DIR:-target}"
triple=x86_64-unknown-linux-musl
binary="$target_dir/$triple/release/stagegate"
out=target/image
uid=65532

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)

echo "--- static binary ($triple)"
started=$(date +%s)
cargo build --release --locked --target "$triple" -p stagegate --bin stagegate
echo "release build: $(( $(date +%s) - started )) s"
if readelf -l "$binary" | grep -q 'program interpreter'; then
    echo "error: $binary is dynamically linked; the image has no libc" >&2
    exit 1
fi

echo "--- image"
mkdir -p "$out/data"
# The release profile keeps line tables for backtraces in development;
# the image ships the binary without them (178 MB -> 31 MB).
strip -o "$out/stagegate" "$binary"
# buildah keeps its layers in its own storage; vfs needs no kernel
# overlay support (CI machines and containers may lack it).
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet --chmod 0755 "$ctr" "$out/stagegate" /usr/local/bin/stagegate
buildah copy --quiet --chmod 0644 "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
buildah copy --quiet --chmod 0644 "$ctr" deploy/image/passwd /etc/passwd
buildah copy --quiet --chmod 0644 "$ctr" deploy/image/group /etc/group
buildah copy --quiet --chown "$uid:$uid" --chmod 0700 "$ctr" "$out/data" /var/lib/stagegate
buildah config \
    --user "$uid:$uid" \
    --workingdir /var/lib/stagegate \
    --entrypoint '["/usr/local/bin/stagegate","serve","--config","/etc/stagegate/stagegate.toml"]' \
    --cmd '' \
    --volume /var/lib/stagegate \
    --port 8080/tcp --port 8443/tcp \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label org.opencontainers.image.title=stagegate \
    --label "org.opencontainers.image.description=Release governance for AI systems: signed WebAssembly policies, gate decisions, a tamper-evident decision log" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.created=$created" \
    "$ctr"
rm -f "$out/stagegate.oci.tar"
buildah commit --quiet --format oci --rm "$ctr" "oci-archive:$out/stagegate.oci.tar" >/dev/null
trap - EXIT
echo "wrote $out/stagegate.oci.tar ($(du -h "$out/stagegate.oci.tar" | cut -f1))"

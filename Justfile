# stagegate — every routine task. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

key := "data/keys/dev"
target_dir := env_var_or_default("CARGO_TARGET_DIR", "target")
# The binary `just build` makes (see there for why not `cargo build`).
bin := target_dir / "debug/stagegate"
bundle_out := "target/bundles/iso42001.bundle"

# List the recipes
default:
    @just --list

# Install what builds need: the wasm target for policy components
setup:
    rustup target add wasm32-wasip2

# Install what Python policies build with (pinned: `stagegate build` checks it)
python-tools:
    pip install --quiet componentize-py==0.25.1

# Build the policy components (wasm32-wasip2)
policies: setup
    cargo build --target wasm32-wasip2 --profile policy -p iso42001 -p hostile -p acme-rules

# Build and sign the reference bundle with the development key (created on first use)
bundle: build
    @test -f {{key}} || {{bin}} keygen --out {{key}}
    {{bin}} build policies/iso42001 --out {{bundle_out}}
    {{bin}} sign {{bundle_out}} --key {{key}}
    {{bin}} verify {{bundle_out}} --trust data/keys

# Run the decision service on its embedded defaults (127.0.0.1:8080)
serve: build
    {{bin}} serve

# Run every test (unit, policy cases, end-to-end), then list those skipped for want of a tool
test: policies python-tools
    #!/usr/bin/env bash
    set -euo pipefail
    # Each test skipped by support::require_tool appends a line here.
    skipped="$(realpath -m "{{target_dir}}")/skipped-tests.txt"
    mkdir -p "$(dirname "$skipped")"
    : > "$skipped"
    export STAGEGATE_SKIPPED="$skipped"
    summary() {
        echo
        if [ -s "$skipped" ]; then
            sort -u "$skipped"
            echo "skipped: $(sort -u "$skipped" | wc -l) tests for want of a tool (just test-deps installs them)"
        else
            echo "skipped: none"
        fi
    }
    trap summary EXIT
    cargo test --workspace
    {{bin}} test policies/iso42001 | tail -n 1
    python3 -m unittest discover -s sdk/python/tests
    {{bin}} test policies/acme-python | tail -n 1

# Install the tools the tests use beyond Rust: Debian packages, pinned Python packages (.ci/run too)
test-deps: python-tools
    #!/usr/bin/env bash
    set -euo pipefail
    # PostgreSQL: the records tests; jq, curl: the README scenario; openssl:
    # the admission tests' certificates and the GitHub App key; nginx: the
    # real gateway of the exposure check; docker-registry: the real OCI
    # registry of the bundle distribution tests; chromium: the console's
    # browser test.
    need=()
    command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
    command -v jq >/dev/null 2>&1 || need+=(jq)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    [ -x /usr/sbin/nginx ] || need+=(nginx)
    [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    # buildah, skopeo, musl-tools: `just image` and the image test;
    # prometheus (promtool too): the alert rules' tests and the live
    # Prometheus test.
    command -v buildah >/dev/null 2>&1 || need+=(buildah)
    command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
    command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
    command -v promtool >/dev/null 2>&1 || need+=(prometheus)
    if [ "${#need[@]}" -gt 0 ]; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    # Implementations of the formats no one here wrote: in-toto and
    # securesystemslib make and check attestations and receipts; trestle
    # and NIST's schema validate the OSCAL export; PyYAML reads the example
    # manifests; playwright drives the system Chromium (no browser
    # download); cryptography is the stand-in OIDC issuer's (tests/identity);
    # openapi-spec-validator and schemathesis check and attack the published
    # OpenAPI document (tests/openapi_contract.rs).
    # componentize-py (Python policies) comes with python-tools.
    pip install --quiet \
        in-toto==3.1.0 'securesystemslib[crypto]==1.6.0' \
        compliance-trestle==5.2.0 jsonschema==4.26.0 \
        PyYAML==6.0.3 \
        playwright==1.65.2 \
        cryptography==48.0.0 \
        kubernetes-validate==1.37.0 \
        openapi-spec-validator==0.9.0 schemathesis==4.32.5

# Build the `stagegate` binary (and the tests) with one set of dependency
# features. The tests add the benches' and guests' crates, whose features
# (proc-macro2, syn, ...) reach nearly every dependency; a plain
# `cargo build -p stagegate` resolves without them and would build wasmtime
# and most of the tree a second time, after or before `just test`.
build: setup
    cargo test --workspace --no-run

# In-process benchmarks: criterion, then the side-by-side table
bench: setup
    cargo bench -p stagegate --bench decisions
    cargo bench -p stagegate --bench table

# HTTP benchmark with wrk: issue 25's table (deny/allow per records configuration, authz p99, beside /healthz)
bench-http: setup
    host/benches/http.sh

# Adapter latency (Argo Rollouts, Flagger, evaluations, Kubernetes admission over TLS) beside /healthz
bench-adapters: setup
    host/benches/adapters.sh

# Peak RSS with 4 bundles at 64 connections for 30 s
bench-memory: setup
    host/benches/memory.sh

# The container image (buildah; FROM scratch, a static musl binary): target/image/stagegate.oci.tar
image:
    rustup target add x86_64-unknown-linux-musl
    deploy/image/build.sh

# Format the code
fmt:
    cargo fmt --all

# Lint: formatting and clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

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

# Run every test: unit, policy cases, end-to-end
test: policies python-tools
    cargo test --workspace
    {{bin}} test policies/iso42001 | tail -n 1
    python3 -m unittest discover -s sdk/python/tests
    {{bin}} test policies/acme-python | tail -n 1

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

# HTTP benchmark with wrk: gate decisions against /healthz at 1, 16, 64 connections
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

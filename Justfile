# stagegate — every routine task. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

key := "data/keys/dev"
# `cargo test` builds the binary with the test dependency set; running that
# very binary avoids a second build of wasmtime with another feature set.
target_dir := env_var_or_default("CARGO_TARGET_DIR", "target")
bundle_out := "target/bundles/iso42001.bundle"

# List the recipes
default:
    @just --list

# Install what builds need: the wasm target for policy components
setup:
    rustup target add wasm32-wasip2

# Build the policy components (wasm32-wasip2)
policies: setup
    cargo build --target wasm32-wasip2 --profile policy -p iso42001 -p hostile

# Build and sign the reference bundle with the development key (created on first use)
bundle: setup
    cargo build -p stagegate
    @test -f {{key}} || ./target/debug/stagegate keygen --out {{key}}
    ./target/debug/stagegate build policies/iso42001 --out {{bundle_out}}
    ./target/debug/stagegate sign {{bundle_out}} --key {{key}}
    ./target/debug/stagegate verify {{bundle_out}} --trust data/keys

# Run the decision service on its embedded defaults (127.0.0.1:8080)
serve: setup
    cargo run -p stagegate -- serve

# Run every test: unit, policy cases, end-to-end
test: policies
    cargo test --workspace
    {{target_dir}}/debug/stagegate test policies/iso42001 | tail -n 1

# In-process benchmarks: criterion, then the side-by-side table
bench: setup
    cargo bench -p stagegate --bench decisions
    cargo bench -p stagegate --bench table

# HTTP benchmark with wrk: gate decisions against /healthz at 1, 16, 64 connections
bench-http: setup
    host/benches/http.sh

# Peak RSS with 4 bundles at 64 connections for 30 s
bench-memory: setup
    host/benches/memory.sh

# Format the code
fmt:
    cargo fmt --all

# Lint: formatting and clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

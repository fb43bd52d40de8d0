# stagegate — every routine task. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

key := "data/keys/dev"
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
    cargo run -q -p stagegate -- test policies/iso42001 | tail -n 1

# Format the code
fmt:
    cargo fmt --all

# Lint: formatting and clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

#!/usr/bin/env bash
# Memory benchmark: peak RSS of the release server with 4 bundles loaded,
# serving 64 concurrent connections for 30 s (decisions spread over the 4
# bundles). Per-instance memory is measured in-process by `cargo bench
# --bench table`.
#
# Usage: host/benches/memory.sh [SECONDS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-30}"
target="${CARGO_TARGET_DIR:-target}"
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
cargo build --release -q -p stagegate
bin="$target/release/stagegate"

work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" keygen --out "$work/keys/bench" >/dev/null
mkdir -p "$work/trust" "$work/in" && cp "$work/keys/bench.pub" "$work/trust/"
port=$((20000 + RANDOM % 20000))
{
    echo "listen = \"127.0.0.1:$port\""
    echo "data_dir = \"$work/data\""
    echo "[trust]"
    echo "dir = \"$work/trust\""
    echo "[limits]"
    echo "concurrency = 1024"
} > "$work/config.toml"
for n in 1 2 3 4; do
    mkdir -p "$work/src$n/tests"
    cp policies/iso42001/params.json policies/iso42001/controls.json "$work/src$n/"
    printf 'name = "policy-%s"\nversion = "1.0.0"\n[component]\nwasm = "policy.wasm"\n' "$n" > "$work/src$n/bundle.toml"
done
cargo build -q --target wasm32-wasip2 --profile policy -p iso42001
for n in 1 2 3 4; do
    cp "$target/wasm32-wasip2/policy/iso42001.wasm" "$work/src$n/policy.wasm"
    "$bin" build "$work/src$n" --out "$work/in/p$n.bundle" >/dev/null
    "$bin" sign "$work/in/p$n.bundle" --key "$work/keys/bench" >/dev/null
    printf '[[bundles]]\nname = "policy-%s"\nfile = "%s"\n' "$n" "$work/in/p$n.bundle" >> "$work/config.toml"
done
RUST_LOG=warn "$bin" serve --config "$work/config.toml" 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
cat > "$work/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY"), "rb")
local body = f:read("*a")
f:close()
local n = 0
request = function()
    n = n + 1
    return wrk.format("POST", "/v1/decisions/gate?bundle=policy-" .. (n % 4 + 1), {["Content-Type"] = "application/json"}, body)
end
LUA
out=$(BODY="$PWD/examples/gate-high-risk.json" wrk -t2 -c64 -d"${secs}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
echo "4 bundles, 64 connections, ${secs}s: $(awk '/Requests\/sec/ {print $2}' <<<"$out") requests/s, $(awk '/Non-2xx|Socket errors/' <<<"$out" | tr '\n' ' ')"
echo "RSS idle before load: $((idle / 1024)) MiB; peak RSS (VmHWM): $((peak / 1024)) MiB; RSS at end: $((rss / 1024)) MiB"

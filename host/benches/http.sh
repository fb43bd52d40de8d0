#!/usr/bin/env bash
# HTTP benchmark (`just bench-http`): the release binary serving the
# reference bundle, driven by wrk at 1, 16 and 64 connections against
# POST /v1/decisions/gate and GET /healthz in the same run, so the ratio
# decision/healthz compares like with like on this machine.
#
# Usage: host/benches/http.sh [SECONDS_PER_RUN]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
target="${CARGO_TARGET_DIR:-target}"

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
cargo build --release -q -p stagegate
bin="$target/release/stagegate"

work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" keygen --out "$work/keys/bench" >/dev/null
mkdir -p "$work/trust" && cp "$work/keys/bench.pub" "$work/trust/"
"$bin" build policies/iso42001 --out "$work/ref.bundle" >/dev/null 2>&1
"$bin" sign "$work/ref.bundle" --key "$work/keys/bench" >/dev/null
# start_server LOG_DECISIONS DURABILITY: a fresh server (and data dir) on a new port.
start_server() {
    [ -n "${pid:-}" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    port=$((20000 + RANDOM % 20000))
    rm -rf "$work/data"
    cat > "$work/config.toml" <<CONF
listen = "127.0.0.1:$port"
data_dir = "$work/data"
log_format = "json"
[trust]
dir = "$work/trust"
[limits]
concurrency = 1024
[records]
log_decisions = $1
durability = "$2"
[[bundles]]
name = "iso42001-reference"
file = "$work/ref.bundle"
default = true
CONF
    RUST_LOG=warn "$bin" serve --config "$work/config.toml" 2>"$work/server.log" &
    pid=$!
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server.log"; exit 1; }
}
start_server true ack

cat > "$work/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA

# Prints: rps p50_ms p99_ms errors
run() {
    local conns="$1" url="$2" script="$3" threads=2
    [ "$conns" -lt 2 ] && threads=1
    local out
    out=$(BODY="$PWD/examples/gate-high-risk.json" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency ${script:+-s "$script"} "$url")
    local rps p50 p99 errs non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    echo "$rps $(ms "$p50") $(ms "$p99") $(( ${errs:-0} + ${non2xx:-0} ))"
}
# wrk prints 812.00us / 1.20ms / 2.00s: normalise to ms.
ms() {
    local v="$1"
    case "$v" in
        *us) awk -v x="${v%us}" 'BEGIN {printf "%.3f", x/1000}' ;;
        *ms) awk -v x="${v%ms}" 'BEGIN {printf "%.3f", x}' ;;
        *s) awk -v x="${v%s}" 'BEGIN {printf "%.3f", x*1000}' ;;
        *) echo "$v" ;;
    esac
}

echo "default configuration (every decision logged, answered after its log entry is committed)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk and the server share them; ${secs}s per run"
echo
echo "| connections | endpoint | requests/s | p50 ms | p99 ms | errors | decision ÷ healthz |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for c in 1 16 64; do
    read -r g_rps g_p50 g_p99 g_err < <(run "$c" "http://127.0.0.1:$port/v1/decisions/gate" "$work/post.lua")
    read -r h_rps h_p50 h_p99 h_err < <(run "$c" "http://127.0.0.1:$port/healthz" "")
    ratio=$(awk -v a="$g_rps" -v b="$h_rps" 'BEGIN {printf "%.2f", a/b}')
    echo "| $c | POST /v1/decisions/gate | $g_rps | $g_p50 | $g_p99 | $g_err | $ratio |"
    echo "| $c | GET /healthz | $h_rps | $h_p50 | $h_p99 | $h_err | |"
done

echo
echo "Decision log cost, same run, 64 connections, POST /v1/decisions/gate:"
echo
echo "| records configuration | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---:|---:|---:|---:|"
for variant in "true ack" "true queued" "false ack"; do
    # shellcheck disable=SC2086
    start_server $variant
    read -r rps p50 p99 err < <(run 64 "http://127.0.0.1:$port/v1/decisions/gate" "$work/post.lua")
    set -- $variant
    label="log_decisions=$1, durability=$2"
    [ "$1" = false ] && label="log_decisions=false (logging off)"
    echo "| $label | $rps | $p50 | $p99 | $err |"
done

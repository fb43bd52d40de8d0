#!/usr/bin/env bash
# Decision throughput with 1, 2 and 3 replicas on one PostgreSQL log
# (docs/log.md, "Replicas"): one replica sequences (holds the lease and
# appends), the others queue their entries and answer once they are in
# the log (`durability = "ack"`). Each replica count gets a fresh
# database; one wrk per replica (1 thread each) drives
# POST /v1/decisions/gate with the `deny` body (logged, no receipt), the
# connections split evenly so every run offers the same concurrency.
# Reported: total decisions/s, the worst replica's p99, and the log's
# size and queue afterwards (every answered decision must be in the log,
# nothing left queued).
#
# Usage: host/benches/replicas.sh [SECONDS_PER_RUN]   (default 10)
#   STAGEGATE_BIN=path   the binary (default target/debug/stagegate if it
#                        exists, else a release build)
#   POSTGRES=postgres://user:pass@host:port (default the local test server)
#   CONNS=N              total wrk connections (default 48)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
conns="${CONNS:-48}"
pg="${POSTGRES:-postgres://postgres:postgres@127.0.0.1:5432}"
target="${CARGO_TARGET_DIR:-target}"
command -v jq >/dev/null || { echo "jq is needed"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed"; exit 1; }
command -v psql >/dev/null || { echo "psql is needed"; exit 1; }
bin="${STAGEGATE_BIN:-}"
if [ -z "$bin" ]; then
    if [ -x "$target/debug/stagegate" ]; then bin="$target/debug/stagegate"
    else cargo build --release -q -p stagegate; bin="$target/release/stagegate"; fi
fi

work="$(mktemp -d)"
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop; rm -rf "$work"' EXIT
"$bin" keygen --out "$work/keys/bench" >/dev/null
mkdir -p "$work/trust" && cp "$work/keys/bench.pub" "$work/trust/"
"$bin" build policies/iso42001 --out "$work/ref.bundle" >/dev/null 2>&1
"$bin" sign "$work/ref.bundle" --key "$work/keys/bench" >/dev/null
jq -c 'del(.verification.results[].attestation)' examples/gate-high-risk.json > "$work/deny.json"
GW=$("$bin" token --name gw --role gateway 2>"$work/token.toml")
sed -n '/^\[\[tokens\]\]/,$p' "$work/token.toml" > "$work/tokens.toml"


ms() {
    local v="$1"
    case "$v" in
        *us) awk -v x="${v%us}" 'BEGIN {printf "%.2f", x/1000}' ;;
        *ms) awk -v x="${v%ms}" 'BEGIN {printf "%.2f", x}' ;;
        *s) awk -v x="${v%s}" 'BEGIN {printf "%.2f", x*1000}' ;;
        *) echo "$v" ;;
    esac
}
sql() { psql -qtA "$pg/stagegate_replicas" -c "$1"; }

echo "binary: $bin ($(file -b "$bin" | grep -q 'not stripped' && echo unstripped || echo stripped); $(basename "$(dirname "$bin")") build)"
echo "machine: $(nproc) cores; wrk and the servers share them; ${secs}s per run; $conns connections in all"
echo
echo "| replicas | decisions/s | p99 ms (worst replica) | errors | log entries | left queued | load average before |"
echo "|---:|---:|---:|---:|---:|---:|---|"
for n in 1 2 3; do
    psql -q "$pg/postgres" -c 'DROP DATABASE IF EXISTS stagegate_replicas' -c 'CREATE DATABASE stagegate_replicas' >/dev/null
    ports=()
    for i in $(seq 1 "$n"); do
        port=$((20000 + RANDOM % 20000))
        ports+=("$port")
        cat > "$work/config$i.toml" <<CONF
listen = "127.0.0.1:$port"
data_dir = "$work/data$n-$i"
log_format = "json"
[trust]
dir = "$work/trust"
[limits]
concurrency = 1024
[records]
database = "$pg/stagegate_replicas"
durability = "ack"
[receipts]
enabled = false
[scheduler]
enabled = false
replica = "r$i"
[[bundles]]
name = "iso42001-reference"
file = "$work/ref.bundle"
default = true
CONF
        cat "$work/tokens.toml" >> "$work/config$i.toml"
        RUST_LOG=warn "$bin" serve --config "$work/config$i.toml" 2>"$work/server$i.log" &
        pids+=($!)
        for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server$i.log"; exit 1; }
    done
    # One decision through each replica first (each is answered once in
    # the log, so a sequencer is in place).
    for port in "${ports[@]}"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/decisions/gate" \
            -H "Authorization: Bearer $GW" -H 'Content-Type: application/json' --data-binary "@$work/deny.json")
        [ "$code" = 200 ] || { echo "warm-up gate answered $code"; cat "$work/server"*.log; exit 1; }
    done
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    per=$((conns / n))
    for i in $(seq 1 "$n"); do
        BODY="$work/deny.json" GW="$GW" wrk -t1 -c"$per" -d"${secs}s" --latency -s host/benches/post.lua \
            "http://127.0.0.1:${ports[$((i-1))]}/v1/decisions/gate" > "$work/wrk$i.txt" &
    done
    wait $(jobs -p | grep -v -F -x -f <(printf '%s\n' "${pids[@]}")) 2>/dev/null || true
    total=0; worst=0; errors=0
    for i in $(seq 1 "$n"); do
        out=$(cat "$work/wrk$i.txt")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p99=$(ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
        e=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
        x=$(awk '/Non-2xx/ {print $5}' <<<"$out")
        total=$(awk -v a="$total" -v b="$rps" 'BEGIN {printf "%.0f", a+b}')
        worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN {print (b>a)?b:a}')
        errors=$((errors + ${e:-0} + ${x:-0}))
    done
    entries=$(sql "SELECT seq FROM chain_head WHERE id = 1")
    queued=$(sql "SELECT COUNT(*) FROM log_queue" 2>/dev/null || echo "n/a")
    echo "| $n | $total | $worst | $errors | $entries | $queued | $load |"
    stop
done

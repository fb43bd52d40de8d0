#!/usr/bin/env bash
# HTTP benchmark (`just bench-http`): the release binary serving the
# reference bundle, driven by wrk at 1, 16 and 64 connections against
# POST /v1/decisions/gate, the per-request exposure check
# (GET /v1/integrations/authz, one deployment at its 5 % pilot, a new
# subject per request) and GET /healthz in the same run on the same server,
# so the ratios decision/healthz and authz/healthz compare like with like
# on this machine.
#
# Usage: host/benches/http.sh [SECONDS_PER_RUN]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
target="${CARGO_TARGET_DIR:-target}"

command -v jq >/dev/null || { echo "jq is needed"; exit 1; }
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
# STAGEGATE_BIN: a release binary built elsewhere (e.g. another target dir).
bin="${STAGEGATE_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release -q -p stagegate
    bin="$target/release/stagegate"
fi

work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" keygen --out "$work/keys/bench" >/dev/null
mkdir -p "$work/trust" && cp "$work/keys/bench.pub" "$work/trust/"
"$bin" build policies/iso42001 --out "$work/ref.bundle" >/dev/null 2>&1
"$bin" sign "$work/ref.bundle" --key "$work/keys/bench" >/dev/null
# Tokens: the gateway asks (decisions, authz); operator and approvers make
# the deployment the authz check answers for.
token() { # token NAME ROLE [TITLE]: prints the token, appends its entry
    local t
    t=$("$bin" token --name "$1" --role "$2" 2>"$work/token.toml")
    sed -n '/^\[\[tokens\]\]/,$p' "$work/token.toml" >> "$work/tokens.toml"
    [ -n "${3:-}" ] && echo "title = \"$3\"" >> "$work/tokens.toml"
    echo "$t"
}
: > "$work/tokens.toml"
GW=$(token gw gateway)
OPS=$(token ops operator)
LEE=$(token a.lee approver "Model Risk Reviewer")
DOE=$(token j.doe approver "Head of AI Risk")
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
    cat "$work/tokens.toml" >> "$work/config.toml"
    RUST_LOG=warn "$bin" serve --config "$work/config.toml" 2>"$work/server.log" &
    pid=$!
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server.log"; exit 1; }
}
start_server true ack

# The scenario (docs/records.md)'s release, reviewed and authorised, deployed at its
# pilot (5 %): what the authz check answers for.
api() { # api TOKEN METHOD PATH [JSON]
    curl -sf -X "$2" "http://127.0.0.1:$port$3" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' ${4:+-d "$4"}
}
api "$OPS" POST /v1/systems '{"id":"credit-scoring","risk_tier":"high","consequential":true,"escalation_contact":"risk desk"}' >/dev/null
api "$OPS" POST /v1/systems/credit-scoring/releases "$(jq '{version: "2.3.0"} + ({risk, verification, safeguards, communication, monitoring, supply_chain}) + {deficiencies: [.deficiencies[] | del(.acceptance)]}' examples/gate-high-risk.json)" >/dev/null
api "$LEE" POST /v1/releases/credit-scoring@2.3.0/reviews '{"outcome":"approved"}' >/dev/null
api "$DOE" POST /v1/releases/credit-scoring@2.3.0/authorisations '{"conditions":[]}' >/dev/null
api "$DOE" POST /v1/releases/credit-scoring@2.3.0/acceptances '{"deficiency_id":"D-7","rationale":"within tolerance"}' >/dev/null
deployment=$(api "$OPS" POST /v1/deployments "{\"release_id\":\"credit-scoring@2.3.0\",\"plan\":$(jq .plan examples/gate-high-risk.json)}" | jq -r .deployment.id)
[ -n "$deployment" ] && [ "$deployment" != null ] || { echo "could not create the deployment"; cat "$work/server.log"; exit 1; }

cat > "$work/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GW")
LUA
# Static headers, like the other two endpoints: the server's work (one
# HMAC, one table lookup) does not depend on which subject asks, and a Lua
# `request` function per request would cost wrk, which shares the cores,
# more than it costs the server.
cat > "$work/authz.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GW")
wrk.headers["X-Stagegate-Deployment"] = os.getenv("DEPLOYMENT")
wrk.headers["X-Stagegate-Subject"] = "user-42"
LUA

# Prints: rps p50_ms p99_ms errors
run() {
    local conns="$1" url="$2" script="$3" threads=2
    [ "$conns" -lt 2 ] && threads=1
    local out
    out=$(BODY="$PWD/examples/gate-high-risk.json" GW="$GW" DEPLOYMENT="${deployment:-}" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency ${script:+-s "$script"} "$url")
    local rps p50 p99 errs non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    # The authz check refuses most subjects with 403 by design: not errors.
    [ "${ALLOW_403:-}" = 1 ] && non2xx=0
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
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk and the server share them; ${secs}s per run; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| connections | endpoint | requests/s | p50 ms | p99 ms | errors | ÷ healthz |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for c in 1 16 64; do
    read -r g_rps g_p50 g_p99 g_err < <(run "$c" "http://127.0.0.1:$port/v1/decisions/gate" "$work/post.lua")
    read -r a_rps a_p50 a_p99 a_err < <(ALLOW_403=1 run "$c" "http://127.0.0.1:$port/v1/integrations/authz" "$work/authz.lua")
    read -r h_rps h_p50 h_p99 h_err < <(run "$c" "http://127.0.0.1:$port/healthz" "")
    g_ratio=$(awk -v a="$g_rps" -v b="$h_rps" 'BEGIN {printf "%.2f", a/b}')
    a_ratio=$(awk -v a="$a_rps" -v b="$h_rps" 'BEGIN {printf "%.2f", a/b}')
    echo "| $c | POST /v1/decisions/gate | $g_rps | $g_p50 | $g_p99 | $g_err | $g_ratio |"
    echo "| $c | ANY /v1/integrations/authz | $a_rps | $a_p50 | $a_p99 | $a_err | $a_ratio |"
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

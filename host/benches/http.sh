#!/usr/bin/env bash
# HTTP benchmark (`just bench-http`): the release binary serving the
# reference bundle, driven by wrk (2 threads, 64 connections) against
# POST /v1/decisions/gate and GET /healthz on the same server, back to
# back, for each records configuration, plus the per-request exposure
# check (GET /v1/integrations/authz) beside /healthz. It ends with the
# target table of issue 25: every figure a ratio to the same server's
# /healthz, measured in this one run, so the ratios compare like with like
# on whatever machine runs it.
#
# The gate request is the reference high-risk release of
# examples/gate-high-risk.json, compact: once with its results' typed
# attestation references (`allow`), once without them (`deny`: a
# high-risk release needs attested evidence). A third form carries the
# results as three DSSE envelopes in `attestations`, signed here with
# `stagegate attest`; a server that does not take that form (or does not
# allow on it) gets "n/a" in its row, never a figure.
#
# Usage: host/benches/http.sh [SECONDS_PER_RUN]   (default 6)
#   STAGEGATE_BIN=path   a release binary built elsewhere (default: build one)
#   DSSE_REQUEST=path    the DSSE-form gate request to send instead of the one
#                        made here (its envelopes must be signed by the key in
#                        DSSE_KEY_PEM, an SPKI PEM trusted for evaluation/v1)
#   TABLE=0              skip the in-process warm gate (`cargo bench --bench table -- warm-gate`)
#   POSTGRES=postgres://user:pass@host:port
#                        records on PostgreSQL instead of SQLite: each server
#                        gets a fresh database `stagegate_bench` (needs psql)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-6}"
conns=64
target="${CARGO_TARGET_DIR:-target}"

command -v jq >/dev/null || { echo "jq is needed"; exit 1; }
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
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

# The request bodies.
jq -c . examples/gate-high-risk.json > "$work/allow.json"
jq -c 'del(.verification.results[].attestation)' examples/gate-high-risk.json > "$work/deny.json"
# The DSSE form: each result as an evaluation attestation about the
# release's artifact, signed by an evidence key the server trusts.
"$bin" keygen --out "$work/keys/evidence" >/dev/null
"$bin" attest --key "$work/keys/evidence" --public-key > "$work/evidence.pem"
dsse_pem="${DSSE_KEY_PEM:-$work/evidence.pem}"
digest=$(jq -r .release.artifact_digest examples/gate-high-risk.json)
: > "$work/envelopes.jsonl"
jq -c '.verification.results[] | {metric: .name, value: .metric, threshold: .threshold,
        comparison: (if .name == "fairness-dpd" then "<=" else ">=" end),
        dataset: "holdout-2026-10", samples: 10000}' examples/gate-high-risk.json |
    while read -r predicate; do
        echo "$predicate" | "$bin" attest --key "$work/keys/evidence" --subject "$digest" \
            --predicate-type https://stagegate.dev/attestation/evaluation/v1 --predicate - >> "$work/envelopes.jsonl"
    done
if [ -n "${DSSE_REQUEST:-}" ]; then
    cp "$DSSE_REQUEST" "$work/dsse.json"
else
    jq -c --slurpfile envs "$work/envelopes.jsonl" \
        '.verification.results = [] | . + {attestations: $envs}' examples/gate-high-risk.json > "$work/dsse.json"
fi

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

# start_server LOG_DECISIONS DURABILITY RECEIPTS: a fresh server (and data
# dir) on a new port.
start_server() {
    [ -n "${pid:-}" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    port=$((20000 + RANDOM % 20000))
    rm -rf "$work/data"
    local database=""
    if [ -n "${POSTGRES:-}" ]; then
        psql -q "$POSTGRES/postgres" -c 'DROP DATABASE IF EXISTS stagegate_bench' -c 'CREATE DATABASE stagegate_bench' >/dev/null
        database="database = \"$POSTGRES/stagegate_bench\""
    fi
    cat > "$work/config.toml" <<CONF
listen = "127.0.0.1:$port"
data_dir = "$work/data"
log_format = "json"
[trust]
dir = "$work/trust"
[limits]
concurrency = 1024
[records]
$database
log_decisions = $1
durability = "$2"
[receipts]
enabled = $3
[[bundles]]
name = "iso42001-reference"
file = "$work/ref.bundle"
default = true
[[evidence.keys]]
file = "$dsse_pem"
predicates = ["https://stagegate.dev/attestation/evaluation/v1"]
CONF
    cat "$work/tokens.toml" >> "$work/config.toml"
    # The default log level (info), as a server runs unless told otherwise.
    RUST_LOG="${RUST_LOG:-info}" "$bin" serve --config "$work/config.toml" 2>"$work/server.log" &
    pid=$!
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server.log"; exit 1; }
}

api() { # api TOKEN METHOD PATH [JSON]
    curl -sf -X "$2" "http://127.0.0.1:$port$3" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' ${4:+-d "$4"}
}
# outcome BODY_FILE: the gate's outcome for a body ("refused NNN" if not 200).
outcome() {
    local code
    code=$(curl -s -o "$work/probe.json" -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/decisions/gate" \
        -H "Authorization: Bearer $GW" -H 'Content-Type: application/json' --data-binary "@$1")
    if [ "$code" = 200 ]; then jq -r .outcome "$work/probe.json"; else echo "refused $code"; fi
}

# Static headers: the server's work (one HMAC, one table lookup) does not
# depend on which subject asks, and a Lua `request` function per request
# would cost wrk, which shares the cores, more than it costs the server.
cat > "$work/authz.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GW")
wrk.headers["X-Stagegate-Deployment"] = os.getenv("DEPLOYMENT")
wrk.headers["X-Stagegate-Subject"] = "user-42"
LUA

# The server's CPU time so far, in clock ticks (user + system, all threads).
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
# run URL SCRIPT [BODY]: prints "rps p50_ms p99_ms errors cpu_us", the last
# the server's CPU time per request over the run (µs): what the request
# costs the server whatever the rate, beside the rate that the client,
# sharing the cores, also shapes.
run() {
    local url="$1" script="$2" body="${3:-}"
    local out t0 t1
    t0=$(ticks)
    out=$(BODY="$body" GW="$GW" DEPLOYMENT="${deployment:-}" wrk -t2 -c"$conns" -d"${secs}s" --latency ${script:+-s "$script"} "$url")
    t1=$(ticks)
    local rps p50 p99 errs non2xx requests cpu
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", (n > 0) ? t / hz * 1e6 / n : 0}')
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    # The authz check refuses most subjects with 403 by design: not errors.
    [ "${ALLOW_403:-}" = 1 ] && non2xx=0
    echo "$rps $(ms "$p50") $(ms "$p99") $(( ${errs:-0} + ${non2xx:-0} )) $cpu"
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }
gate="/v1/decisions/gate"

if [ -n "${POSTGRES:-}" ]; then echo "records: PostgreSQL"; else echo "records: SQLite (WAL, synchronous = FULL)"; fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk (2 threads, $conns connections) and the server share them; ${secs}s per run; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| configuration | /healthz rps | deny rps (× healthz) | allow rps (× healthz) | deny p99 ms | allow p99 ms | errors | server CPU µs per request: /healthz, deny, allow |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
declare -A R
for variant in "default:true ack true" "receipts_off:true ack false" "log_off:false ack false" "queued:true queued true"; do
    name="${variant%%:*}"
    # shellcheck disable=SC2086
    start_server ${variant#*:}
    for b in allow deny; do
        got=$(outcome "$work/$b.json")
        [ "$got" = "$b" ] || { echo "the $b body was answered '$got' ($name): $(head -c 400 "$work/probe.json")"; exit 1; }
    done
    read -r h_rps h_p50 h_p99 h_err h_cpu < <(run "http://127.0.0.1:$port/healthz" "")
    read -r d_rps d_p50 d_p99 d_err d_cpu < <(run "http://127.0.0.1:$port$gate" host/benches/post.lua "$work/deny.json")
    read -r a_rps a_p50 a_p99 a_err a_cpu < <(run "http://127.0.0.1:$port$gate" host/benches/post.lua "$work/allow.json")
    R[$name.h]=$h_rps; R[$name.d]=$d_rps; R[$name.a]=$a_rps
    R[$name.hc]=$h_cpu; R[$name.dc]=$d_cpu; R[$name.ac]=$a_cpu
    case "$name" in
        default) label="default: log \`ack\`, receipts on" ;;
        receipts_off) label="receipts off" ;;
        log_off) label="log off, receipts off" ;;
        queued) label="log \`queued\`, receipts on" ;;
    esac
    echo "| $label | $h_rps | $d_rps ($(ratio "$d_rps" "$h_rps")) | $a_rps ($(ratio "$a_rps" "$h_rps")) | $d_p99 | $a_p99 | $((h_err + d_err + a_err)) | $h_cpu, $d_cpu, $a_cpu |"
    if [ "$name" = default ]; then
        # The DSSE form, on the default server.
        dsse=$(outcome "$work/dsse.json")
        if [ "$dsse" = allow ] && ! jq -e '.receipt.issued == false' "$work/probe.json" >/dev/null 2>&1; then
            read -r s_rps _ s_p99 s_err s_cpu < <(run "http://127.0.0.1:$port$gate" host/benches/post.lua "$work/dsse.json")
            R[dsse]="$s_rps ($(ratio "$s_rps" "$h_rps")×, p99 $s_p99 ms, $s_err errors, server CPU $s_cpu µs per request)"
            R[dsse.r]=$(ratio "$s_rps" "$h_rps")
        else
            R[dsse]="n/a (needs a server that verifies the three DSSE envelopes of a stateless gate's \`attestations\` and issues the receipt; this one answered: $dsse $(jq -c '{code, path, message}' "$work/probe.json" 2>/dev/null | head -c 200))"
        fi
        # The exposure check: its own deployment, then /healthz again and
        # the check right after it, so the two p99s are of the same minute.
        api "$OPS" POST /v1/systems '{"id":"credit-scoring","risk_tier":"high","consequential":true,"escalation_contact":"risk desk"}' >/dev/null
        # The release's results come as the three signed attestations (a
        # release may not type an `attestation` itself).
        api "$OPS" POST /v1/systems/credit-scoring/releases "$(jq --slurpfile envs "$work/envelopes.jsonl" '{version: "2.3.0"} + {artifact_digest: .release.artifact_digest} + ({risk, verification, safeguards, communication, monitoring, supply_chain}) + {deficiencies: [.deficiencies[] | del(.acceptance)]} | .verification.results = [] | . + {attestations: $envs}' examples/gate-high-risk.json)" >/dev/null
        api "$LEE" POST /v1/releases/credit-scoring@2.3.0/reviews '{"outcome":"approved"}' >/dev/null
        api "$DOE" POST /v1/releases/credit-scoring@2.3.0/authorisations '{"conditions":[]}' >/dev/null
        api "$DOE" POST /v1/releases/credit-scoring@2.3.0/acceptances '{"deficiency_id":"D-7","rationale":"within tolerance"}' >/dev/null
        deployment=$(api "$OPS" POST /v1/deployments "{\"release_id\":\"credit-scoring@2.3.0\",\"plan\":$(jq .plan examples/gate-high-risk.json)}" | jq -r .deployment.id) || true
        if [ -n "$deployment" ] && [ "$deployment" != null ]; then
            read -r hh_rps _ hh_p99 _ _ < <(run "http://127.0.0.1:$port/healthz" "")
            read -r z_rps z_p50 z_p99 z_err _ < <(ALLOW_403=1 run "http://127.0.0.1:$port/v1/integrations/authz" "$work/authz.lua")
            R[authz]="p99 $z_p99 ms, p50 $z_p50 ms, $z_rps rps ($(ratio "$z_rps" "$hh_rps")× healthz), $z_err errors; /healthz p99 $hh_p99 ms"
            R[authz.p99]=$z_p99; R[authz.h99]=$hh_p99
        else
            R[authz]="n/a (the deployment could not be created: $(tail -n 3 "$work/server.log"))"
        fi
    fi
done

# The in-process warm gate beside the native floor (the same requests
# decoded and decided without a sandbox).
if [ "${TABLE:-1}" != 0 ]; then
    warm=$(cargo bench -q -p stagegate --bench table -- warm-gate 2>/dev/null | awk '/^warm-gate / {print $2, $3, $4}') || true
fi
read -r w_native w_warm w_ratio <<<"${warm:-}"

met() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {ok = (op == ">=") ? v >= t : v <= t; print ok ? "yes" : "**no**"}'; }
echo
echo "Targets (issue 25), ratios to the same server's /healthz at $conns connections:"
echo
echo "| figure | target | measured | met? |"
echo "|---|---|---|---|"
r=$(ratio "${R[default.a]}" "${R[default.h]}"); echo "| allow, default configuration (log \`ack\`, receipts on) | ≥ 0.35× | ${r}× | $(met "$r" 0.35 '>=') |"
r=$(ratio "${R[default.d]}" "${R[default.h]}"); echo "| deny, default configuration | ≥ 0.35× | ${r}× | $(met "$r" 0.35 '>=') |"
r=$(ratio "${R[log_off.a]}" "${R[log_off.h]}"); echo "| allow, log and receipts off | ≥ 0.5× | ${r}× | $(met "$r" 0.5 '>=') |"
if [ -n "${R[dsse.r]:-}" ]; then
    echo "| allow whose request carries its three DSSE envelopes | ≥ 0.15× | ${R[dsse]} | $(met "${R[dsse.r]}" 0.15 '>=') |"
else
    echo "| allow whose request carries its three DSSE envelopes | ≥ 0.15× | ${R[dsse]} | n/a |"
fi
if [ -n "${w_ratio:-}" ]; then
    echo "| in-process warm gate (\`cargo bench --bench table -- warm-gate\`, small gate request) | ≤ 1.5× native floor | ${w_ratio}× (warm $w_warm µs, native $w_native µs) | $(met "$w_ratio" 1.5 '<=') |"
else
    echo "| in-process warm gate (\`cargo bench --bench table\`) | ≤ 1.5× native floor | not run (TABLE=0 or the bench failed) | n/a |"
fi
if [ -n "${R[authz.p99]:-}" ]; then
    bound=$(awk -v h="${R[authz.h99]}" 'BEGIN {b = 1.5 * h; printf "%.3f", (b > 2) ? b : 2}')
    echo "| authz p99 at $conns connections | ≤ 2 ms, or ≤ 1.5× \`/healthz\` p99 | ${R[authz]} | $(met "${R[authz.p99]}" "$bound" '<=') |"
else
    echo "| authz p99 at $conns connections | ≤ 2 ms, or ≤ 1.5× \`/healthz\` p99 | ${R[authz]} | n/a |"
fi
echo
echo "Server CPU per request with the log and receipts off: allow ${R[log_off.ac]} µs, deny ${R[log_off.dc]} µs, against /healthz's ${R[log_off.hc]} µs on the same server (allow $(ratio "${R[log_off.ac]}" "${R[log_off.hc]}")×)."
echo
echo "Decision log append (issue 24: no more than the chain it replaced): allow with log \`ack\` ÷ allow with the log off, receipts off both: $(ratio "${R[receipts_off.a]}" "${R[log_off.a]}"); deny: $(ratio "${R[receipts_off.d]}" "${R[log_off.d]}")"

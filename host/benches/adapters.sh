#!/usr/bin/env bash
# Adapter latency, beside GET /healthz in the same server run, driven by wrk
# at 16 connections: the Argo Rollouts web metric, the Flagger webhooks, the
# read-only monitoring evaluation, and the Kubernetes admission webhook (the
# example InferenceService, admitted at the pilot stage) over the TLS
# listener and over plain HTTP.
#
# Each adapter call reads the deployment (by ref), runs the policy as a
# read-only evaluation and logs it (durability "ack": answered after the log
# entries commit); an admission also logs its answer.
#
# Usage: host/benches/adapters.sh [SECONDS_PER_RUN]   (default 10)
#        STAGEGATE_BIN=path/to/stagegate to measure a given build (default:
#        a release build). Needs wrk, curl, jq, openssl, python3 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
target="${CARGO_TARGET_DIR:-target}"
bin="${STAGEGATE_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release -q -p stagegate
    bin="$target/release/stagegate"
fi
conns=16

work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" keygen --out "$work/keys/bench" >/dev/null
mkdir -p "$work/trust" && cp "$work/keys/bench.pub" "$work/trust/"
"$bin" build policies/iso42001 --out "$work/ref.bundle" >/dev/null 2>&1
"$bin" sign "$work/ref.bundle" --key "$work/keys/bench" >/dev/null
# The validation team's evidence key: the release's results are attested.
"$bin" keygen --out "$work/keys/evidence" >/dev/null
"$bin" attest --key "$work/keys/evidence" --public-key > "$work/evidence.pem"
EXTRA_SANS="IP:127.0.0.1" examples/kubernetes/make-certs.sh "$work/certs" >/dev/null

sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
port=$((20000 + RANDOM % 20000))
tls_port=$((port + 1))
cat > "$work/config.toml" <<CONF
listen = "127.0.0.1:$port"
listen_tls = "127.0.0.1:$tls_port"
data_dir = "$work/data"
log_format = "json"
[tls]
certificate = "$work/certs/tls.crt"
key = "$work/certs/tls.key"
[trust]
dir = "$work/trust"
[limits]
concurrency = 1024
[scheduler]
enabled = false
[[bundles]]
name = "iso42001-reference"
file = "$work/ref.bundle"
default = true
[[evidence.keys]]
file = "$work/evidence.pem"
predicates = ["https://stagegate.dev/attestation/evaluation/v1"]
[[tokens]]
name = "ops"
sha256 = "$(sha tok-ops)"
roles = ["operator"]
[[tokens]]
name = "a.lee"
sha256 = "$(sha tok-a.lee)"
roles = ["approver"]
title = "Model Risk Reviewer"
[[tokens]]
name = "j.doe"
sha256 = "$(sha tok-j.doe)"
roles = ["approver"]
title = "Head of AI Risk"
[[tokens]]
name = "gw"
sha256 = "$(sha tok-gw)"
roles = ["gateway"]
CONF
RUST_LOG=warn "$bin" serve --config "$work/config.toml" 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server.log"; exit 1; }

# The records: a high-risk system, its release with the artifact digest,
# reviewed, authorised and its deficiency accepted; a deployment at pilot
# (5 %) holding the ref of the example InferenceService; healthy
# observations.
api() { # api WHO METHOD PATH [JSON]
    curl -sf -X "$2" "http://127.0.0.1:$port$3" -H "Authorization: Bearer tok-$1" \
        -H 'Content-Type: application/json' ${4:+-d "$4"}
}
gate=examples/gate-high-risk.json
api ops POST /v1/systems '{"id":"credit-scoring","risk_tier":"high","consequential":true,"escalation_contact":"risk-desk on-call"}' >/dev/null
attestations=$(jq -c '.release.artifact_digest as $d | .verification.results[] | [$d, ({metric: .name, value: .metric,
    threshold: .threshold, comparison: (if .metric >= .threshold then ">=" else "<=" end), dataset: "holdout", samples: 10000} | tojson)] | @tsv' -r "$gate" |
    while IFS=$'\t' read -r digest predicate; do
        "$bin" attest --key "$work/keys/evidence" --subject "$digest" \
            --predicate-type https://stagegate.dev/attestation/evaluation/v1 --predicate - <<<"$predicate"
    done | jq -s -c .)
api ops POST /v1/systems/credit-scoring/releases "$(jq -c --argjson a "$attestations" '{version: "2.3.0", artifact_digest: .release.artifact_digest, risk,
    verification: (.verification | .results = []), attestations: $a, deficiencies: [.deficiencies[] | del(.acceptance)],
    safeguards, communication, monitoring, supply_chain}' "$gate")" >/dev/null
api a.lee POST /v1/releases/credit-scoring@2.3.0/reviews '{"outcome":"approved"}' >/dev/null
api j.doe POST /v1/releases/credit-scoring@2.3.0/authorisations '{"conditions":["EU only"]}' >/dev/null
api j.doe POST /v1/releases/credit-scoring@2.3.0/acceptances '{"deficiency_id":"D-7","rationale":"within tolerance, monitored"}' >/dev/null
deployment=$(api ops POST /v1/deployments "$(jq -c '{release_id: "credit-scoring@2.3.0", plan: (.plan | .stages[].min_duration_hours = 0), refs: {kubernetes: "credit/credit-scoring"}}' "$gate")" | jq -r .deployment.id)
api ops POST "/v1/deployments/$deployment/observations" '{"observations":[{"metric":"error_rate","value":0.01,"samples":20000},{"metric":"harmful_output_rate","value":0,"samples":20000},{"metric":"complaint_rate","value":0,"samples":20000}]}' >/dev/null

python3 - examples/kubernetes/inferenceservice.yaml > "$work/review.json" <<'PY'
import json, sys, yaml
obj = yaml.safe_load(open(sys.argv[1]))
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
    "kind": {"group": "serving.kserve.io", "version": "v1beta1", "kind": "InferenceService"},
    "resource": {"group": "serving.kserve.io", "version": "v1beta1", "resource": "inferenceservices"},
    "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
    "operation": "UPDATE", "userInfo": {"username": "bench"},
    "object": obj, "oldObject": obj, "dryRun": False}}))
PY
answer=$(curl -sf --cacert "$work/certs/ca.crt" "https://127.0.0.1:$tls_port/v1/integrations/kubernetes/admission" \
    -H "Authorization: Bearer tok-gw" -H 'Content-Type: application/json' -d @"$work/review.json")
jq -e '.response.allowed == true' >/dev/null <<<"$answer" || { echo "the review is not admitted: $answer"; exit 1; }

echo '{"name":"credit-scoring","namespace":"credit","phase":"Progressing","checksum":"7c9d5f8b64"}' > "$work/flagger.json"
echo '{"name":"credit-scoring","namespace":"credit","phase":"Progressing","checksum":"7c9d5f8b64","metadata":{"eventMessage":"Advance credit-scoring.credit canary weight 10","eventType":"Normal","timestamp":"1795923000000"}}' > "$work/event.json"

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
# Prints: rps p50_ms p99_ms errors (a non-2xx answer counts as an error
# unless the third argument says the endpoint's expected status is not 2xx)
run() {
    local url="$1" script="$2" expected="${3:-2xx}" body="${4:-$work/review.json}" out rps p50 p99 errs non2xx
    out=$(BODY="$body" wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer tok-gw" ${script:+-s "$script"} "$url")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [ "$expected" = 2xx ] || non2xx=0
    echo "$rps $(ms "$p50") $(ms "$p99") $(( ${errs:-0} + ${non2xx:-0} ))"
}

echo "binary: $bin"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; wrk and the server share them; ${secs}s per run, $conns connections"
echo
echo "| listener | endpoint | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---:|---:|---:|---:|"
base="http://127.0.0.1:$port"
row() { # row LABEL URL SCRIPT [EXPECTED] [BODY]
    local label="$1"; shift
    read -r rps p50 p99 err < <(run "$@")
    echo "| http | $label | $rps | $p50 | $p99 | $err |"
}
row "GET /healthz" "$base/healthz" ""
row "GET argo-rollouts/analysis?ref&weight=5 (successful)" "$base/v1/integrations/argo-rollouts/analysis?ref=credit/credit-scoring&weight=5" ""
row "GET argo-rollouts/analysis?ref&weight=25 (inconclusive)" "$base/v1/integrations/argo-rollouts/analysis?ref=credit/credit-scoring&weight=25" ""
row "GET argo-rollouts/analysis?ref (background)" "$base/v1/integrations/argo-rollouts/analysis?ref=credit/credit-scoring" ""
row "POST flagger/rollout (200)" "$base/v1/integrations/flagger/rollout" host/benches/post.lua 2xx "$work/flagger.json"
row "POST flagger/confirm-promotion (403)" "$base/v1/integrations/flagger/confirm-promotion" host/benches/post.lua 403 "$work/flagger.json"
row "POST flagger/rollback (409)" "$base/v1/integrations/flagger/rollback" host/benches/post.lua 409 "$work/flagger.json"
row "POST flagger/event (200, history written)" "$base/v1/integrations/flagger/event" host/benches/post.lua 2xx "$work/event.json"
row "GET deployments/{id}/evaluations/monitoring" "$base/v1/deployments/$deployment/evaluations/monitoring" ""
for scheme in https http; do
    p=$port
    [ "$scheme" = https ] && p=$tls_port
    read -r a_rps a_p50 a_p99 a_err < <(run "$scheme://127.0.0.1:$p/v1/integrations/kubernetes/admission" host/benches/post.lua)
    read -r h_rps h_p50 h_p99 h_err < <(run "$scheme://127.0.0.1:$p/healthz" "")
    echo "| $scheme | POST /v1/integrations/kubernetes/admission | $a_rps | $a_p50 | $a_p99 | $a_err |"
    echo "| $scheme | GET /healthz | $h_rps | $h_p50 | $h_p99 | $h_err |"
done

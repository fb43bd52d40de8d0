#!/usr/bin/env bash
# The scenario of docs/records.md, end to end: one high-risk release from registration
# through pilot, a failed promotion, an automatic rollback on a breached
# trigger, a fixed release promoted to general availability, silence that
# the scheduler notices and escalates to a webhook receiver, the notice to
# users, and the auditor's record.
#
#   examples/scenario/run.sh            (needs curl, jq, python3; builds stagegate)
#
# Every step checks its answer; the script stops at the first surprise.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
target="${CARGO_TARGET_DIR:-target}"
bin="${STAGEGATE_BIN:-}"
if [ -z "$bin" ]; then
    cargo build -q -p stagegate
    bin="$target/debug/stagegate"
fi
work="$(mktemp -d)"
cleanup() {
    for pid in "${server:-}" "${receiver:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
expect() { # expect JSON JQ-FILTER: fail unless the filter is true
    if ! jq -e "$2" >/dev/null <<<"$1"; then echo "unexpected answer (wanted $2):"; jq . <<<"$1"; exit 1; fi
}

step "A compliance team ships a demo variant of the reference policy (silence limit 3 s) as a signed bundle"
"$bin" keygen --out "$work/keys/compliance" >/dev/null
mkdir -p "$work/trust" "$work/policy"
cp "$work/keys/compliance.pub" "$work/trust/"
jq '.max_silence_minutes = {"low": 0.05, "medium": 0.05, "high": 0.05, "critical": 0.05}' \
    policies/iso42001/params.json > "$work/policy/params.json"
cp policies/iso42001/controls.json "$work/policy/"
printf 'name = "iso42001-reference"\nversion = "1.0.0-demo"\n[component]\ncrate = "%s/guest/iso42001"\nprofile = "policy"\n' "$root" > "$work/policy/bundle.toml"
"$bin" build "$work/policy" --out "$work/iso42001.bundle" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
head -n 1 "$work/build.log"
"$bin" sign "$work/iso42001.bundle" --key "$work/keys/compliance"

step "The model validation team's evidence key: the service trusts it to attest evaluations"
"$bin" keygen --out "$work/keys/evidence" >/dev/null
"$bin" attest --key "$work/keys/evidence" --public-key > "$work/evidence.pem"

step "Tokens: an operator, a reviewer, an authoriser (Head of AI Risk) and an auditor"
config="$work/stagegate.toml"
port=$((20000 + RANDOM % 20000))
cat > "$config" <<CONF
listen = "127.0.0.1:$port"
data_dir = "$work/data"
log_format = "json"
[trust]
dir = "$work/trust"
[scheduler]
intensive_interval_ms = 1000
[webhooks]
allow = ["127.0.0.0/8"]   # the receiver runs on this machine
[[bundles]]
name = "iso42001-reference"
file = "$work/iso42001.bundle"
default = true
[[evidence.keys]]
file = "$work/evidence.pem"
predicates = ["https://stagegate.dev/attestation/evaluation/v1"]
CONF
token() { # token NAME ROLE [TITLE]
    local t
    t=$("$bin" token --name "$1" --role "$2" 2>"$work/token.toml")
    sed -n '/^\[\[tokens\]\]/,$p' "$work/token.toml" >> "$config"
    [ -n "${3:-}" ] && echo "title = \"$3\"" >> "$config"
    echo "$t"
}
OPS=$(token ops operator)
LEE=$(token a.lee approver "Model Risk Reviewer")
DOE=$(token j.doe approver "Head of AI Risk")
AUDIT=$(token audit auditor)
"$bin" serve --config "$config" >/dev/null 2>"$work/server.log" &
server=$!
# Ready once the bundle is verified and compiled: seconds on a busy machine.
ready=""
for _ in $(seq 1 600); do curl -sf "localhost:$port/readyz" >/dev/null && { ready=1; break; }; sleep 0.1; done
[ -n "$ready" ] || { echo "the service did not become ready in 60 s:"; cat "$work/server.log"; exit 1; }
api() { # api TOKEN METHOD PATH [JSON]
    curl -s -X "$2" "localhost:$port$3" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' ${4:+-d "$4"}
}

step "An escalation receiver, and the system registered with it"
# Any free port: a fixed one may be taken on a busy machine, and a receiver
# that cannot listen would only show as escalations that never arrive.
python3 examples/scenario/receiver.py 0 "scenario-secret-0123" "$work/receiver.port" > "$work/escalations.jsonl" 2>"$work/receiver.log" &
receiver=$!
for _ in $(seq 1 100); do [ -s "$work/receiver.port" ] && break; sleep 0.1; done
[ -s "$work/receiver.port" ] || { echo "the receiver did not start:"; cat "$work/receiver.log"; exit 1; }
receiver_port=$(cat "$work/receiver.port")
r=$(api "$OPS" POST /v1/systems "{\"id\":\"credit-scoring\",\"name\":\"Credit scoring\",\"risk_tier\":\"high\",\"consequential\":true,
  \"escalation_contact\":\"risk desk on-call\",
  \"webhooks\":[{\"url\":\"http://127.0.0.1:$receiver_port/hook\",\"secret\":\"scenario-secret-0123\"}]}")
expect "$r" '.system.id == "credit-scoring"'

attest() { # attest: one signed evaluation statement per verification result of the example
    local digest predicate
    digest=$(jq -r .release.artifact_digest examples/gate-high-risk.json)
    jq -c '.verification.results[] | {metric: .name, value: .metric, threshold: .threshold,
        comparison: (if .metric >= .threshold then ">=" else "<=" end), dataset: "holdout-2026-10", samples: 10000}' \
        examples/gate-high-risk.json | while read -r predicate; do
        "$bin" attest --key "$work/keys/evidence" --subject "$digest" \
            --predicate-type https://stagegate.dev/attestation/evaluation/v1 --predicate - <<<"$predicate"
    done | jq -s .
}
release() { # release VERSION: register with attested evidence, review, authorise, accept D-7
    local evidence
    evidence=$(jq --arg v "$1" --argjson attestations "$(attest)" '{version: $v, artifact_digest: .release.artifact_digest}
        + ({risk, verification, safeguards, communication, monitoring, supply_chain})
        + {verification: (.verification | .results = []), attestations: $attestations}
        + {supply_chain: (.supply_chain | del(.attestation))}
        + {deficiencies: [.deficiencies[] | del(.acceptance)]}' examples/gate-high-risk.json)
    expect "$(api "$OPS" POST /v1/systems/credit-scoring/releases "$evidence")" ".release_id == \"credit-scoring@$1\""
    expect "$(api "$LEE" POST "/v1/releases/credit-scoring@$1/reviews" '{"outcome":"approved"}')" '.review.reviewer == "a.lee"'
    expect "$(api "$DOE" POST "/v1/releases/credit-scoring@$1/authorisations" '{"conditions":["EU customers only"]}')" \
        '.authorisation.authorised_by == "j.doe" and .authorisation.role == "Head of AI Risk"'
    expect "$(api "$DOE" POST "/v1/releases/credit-scoring@$1/acceptances" \
        '{"deficiency_id":"D-7","rationale":"thin-file bias within tolerance, monitored weekly"}')" '.acceptance.accepted_by == "j.doe"'
}
plan=$(jq '.plan | .stages[].min_duration_hours = 0' examples/gate-high-risk.json)
observe() { # observe DEPLOYMENT ERROR_RATE
    api "$OPS" POST "/v1/deployments/$1/observations" "{\"observations\":[
      {\"metric\":\"error_rate\",\"value\":$2,\"samples\":20000},
      {\"metric\":\"harmful_output_rate\",\"value\":0,\"samples\":20000},
      {\"metric\":\"complaint_rate\",\"value\":0,\"samples\":20000}]}"
}
promote() { # promote DEPLOYMENT STAGE: reviewed by a.lee, authorised by j.doe
    api "$LEE" POST "/v1/deployments/$1/reviews" "{\"outcome\":\"approved\",\"target_stage\":\"$2\"}" >/dev/null
    api "$DOE" POST "/v1/deployments/$1/progressions" "{\"target_stage\":\"$2\",\"authorisation\":{\"scope\":[\"$2\"]}}"
}

step "Release 2.3.0: registered, reviewed, authorised; the gate lets it into its pilot"
release 2.3.0
r=$(api "$OPS" POST /v1/deployments "{\"release_id\":\"credit-scoring@2.3.0\",\"plan\":$plan}")
expect "$r" '.decision.outcome == "allow" and .deployment.stage == "pilot" and .deployment.traffic_percent == 5'
d1=$(jq -r .deployment.id <<<"$r")
echo "deployment $d1 in pilot at 5%"

step "Pilot error rate 3% against a 2% criterion: the promotion to regional is held"
expect "$(observe "$d1" 0.03)" '.decision.outcome == "alert"'
r=$(promote "$d1" regional)
expect "$r" '.decision.outcome == "hold" and (.decision.findings | map(.code) | index("progression.criterion_failed"))'
echo "held: $(jq -r '[.decision.findings[].code] | join(", ")' <<<"$r")"

step "Error rate 8% breaches the rollback trigger (> 5%): the deployment rolls back by itself"
r=$(observe "$d1" 0.08)
expect "$r" '.decision.outcome == "rollback" and .deployment.status == "rolled_back"'
expect "$(api "$OPS" GET "/v1/deployments/$d1/route")" '.status == "rolled_back"'
echo "rolled back; the plan's procedure: $(jq -r .deployment.plan.rollback.procedure <<<"$r")"

step "Release 2.3.1 fixes it: pilot, regional, general availability"
release 2.3.1
r=$(api "$OPS" POST /v1/deployments "{\"release_id\":\"credit-scoring@2.3.1\",\"plan\":$plan}")
d2=$(jq -r .deployment.id <<<"$r")
for stage in regional general; do
    expect "$(observe "$d2" 0.01)" '.decision.outcome == "healthy"'
    r=$(promote "$d2" "$stage")
    expect "$r" ".decision.outcome == \"promote\" and .deployment.stage == \"$stage\""
    echo "promoted to $stage at $(jq -r .deployment.traffic_percent <<<"$r")%"
done

step "Observations stop: the scheduler notices the silence and the escalation reaches the receiver"
stale() { jq -c "select(.deployment_id == \"$d2\" and .event == \"alert\" and (.reason | contains(\"monitoring.stale\")))" "$work/escalations.jsonl"; }
for _ in $(seq 1 100); do [ -n "$(stale)" ] && break; sleep 0.2; done
expect "$(stale | sed -n '1p')" '.actor | startswith("scheduler@")'
stale | sed -n '1p' | jq -c '{event, deployment_id, reason, actor, escalation_contact}'
echo "escalations received: $(wc -l < "$work/escalations.jsonl") ($(jq -r .event "$work/escalations.jsonl" | sort | uniq -c | tr -s ' ' | paste -sd, -))"

step "What users are told (GET /v1/systems/credit-scoring/notice, public)"
r=$(curl -s "localhost:$port/v1/systems/credit-scoring/notice")
expect "$r" '.release == "2.3.1" and .operational.stage == "general"'
jq '{release, capabilities, intended_use, limitations, reliance_conditions, escalation_contact, operational}' <<<"$r"
curl -s -H 'Accept: text/html' "localhost:$port/v1/systems/credit-scoring/notice" | grep -q '<h1>About Credit scoring</h1>'

step "The auditor's record of the rolled-back deployment tells its story"
rec=$(api "$AUDIT" GET "/v1/deployments/$d1/record")
# The scheduler evaluates every second here, so it may have judged the pilot
# between two of these steps too: the story is the callers' decisions.
expect "$rec" '.chain.log_verified and ([.decisions[] | select(.actor | startswith("scheduler@") | not) | .kind] == ["gate","monitoring","progression","monitoring"])'
jq -r '.history[] | "\(.seq). \(.event) by \(.actor): \(.status) at \(.stage) \(.reason // "")"' <<<"$rec"
rec=$(api "$AUDIT" GET "/v1/deployments/$d2/record")
jq -r '.history[] | "\(.seq). \(.event) by \(.actor): \(.status) at \(.stage) \(.reason // "")"' <<<"$rec" | sed -n '1,4p'

step "The decision log verifies"
kill "$server"; wait "$server" 2>/dev/null || true; server=
"$bin" audit verify --database "sqlite://$work/data/stagegate.db"
echo
echo "scenario complete"

# The reference policy's gate rules (docs/decisions.md#gate-rules), written
# in Rego for the benchmark's comparison with regorus. `input` is the gate
# request as sent to stagegate; `data.params` is the bundle's params.json.
# The decision is `data.stagegate.gate.decision`: {outcome, findings: [{code,
# severity, path}], first_stage}. A test (tests/rego_parity.rs) checks it
# gives the same outcome and blocking and informational codes as the
# WebAssembly policy on every gate test case.
package stagegate.gate

import rego.v1

tier := input.system.risk_tier

now := time.parse_rfc3339_ns(input.now)

rank := {"low": 0, "medium": 1, "high": 2, "critical": 3}

ops := {"<", "<=", ">", ">="}

# A value at `path` in `obj`, or null when absent (or `obj` is null).
get(obj, path) := object.get(obj, path, null) if is_object(obj) else := null

non_blank(x) if {
	is_string(x)
	trim_space(x) != ""
}

is_true(x) if x == true

# A list at `path`, treating absent or null as empty.
list(obj, path) := x if {
	x := get(obj, path)
	is_array(x)
} else := []

ts(x) := time.parse_rfc3339_ns(x) if is_string(x)

ns_per_hour := 3600000000000

ns_per_day := 86400000000000

blocking(code, path) := {"code": code, "severity": "blocking", "path": path}

# --- risk ---------------------------------------------------------------

findings contains blocking("risk.prohibited", "/system/risk_tier") if {
	not tier in data.params.deployable_tiers
}

findings contains blocking("risk.assessment_missing", "/risk/assessment_ref") if {
	not non_blank(get(input, ["risk", "assessment_ref"]))
}

# --- verification ---------------------------------------------------------

findings contains blocking("verification.incomplete", "/verification/complete") if {
	not is_true(get(input, ["verification", "complete"]))
}

findings contains blocking("verification.failed", sprintf("/verification/results/%d", [i])) if {
	some i, r in list(input, ["verification", "results"])
	not is_true(object.get(r, "passed", false))
}

# The reference policy's default when params.json does not set it.
attested_default := {"low": false, "medium": false, "high": true, "critical": true}

attested_required if {
	object.get(data.params, "require_attested_verification", attested_default)[tier] == true
}

findings contains blocking("verification.unattested", sprintf("/verification/results/%d/attestation", [i])) if {
	attested_required
	some i, r in list(input, ["verification", "results"])
	is_true(object.get(r, "passed", false))
	not is_object(object.get(r, "attestation", null))
}

findings contains blocking("verification.unattested", "/verification/results") if {
	attested_required
	is_object(get(input, ["verification"]))
	count(list(input, ["verification", "results"])) == 0
}

findings contains blocking("integration.untested", "/verification/integration_tested") if {
	is_true(get(input, ["verification", "integration_required"]))
	not is_true(get(input, ["verification", "integration_tested"]))
}

# --- review ---------------------------------------------------------------

review_completed := ts(get(input, ["review", "completed_at"]))

review_done if review_completed <= now

findings contains blocking("review.missing", "/review/completed_at") if not review_done

findings contains blocking("review.rejected", "/review/outcome") if {
	review_done
	get(input, ["review", "outcome"]) == "rejected"
}

findings contains {"code": "review.conditions", "severity": "info", "path": "/review/outcome"} if {
	get(input, ["review", "outcome"]) == "approved_with_conditions"
}

# --- authorisation --------------------------------------------------------

auth := get(input, ["authorisation"])

authorised if non_blank(get(auth, ["authorised_by"]))

authorised_at := ts(get(auth, ["authorised_at"]))

findings contains blocking("authorisation.missing", "/authorisation") if not authorised

findings contains blocking("authorisation.incomplete", "/authorisation/role") if {
	authorised
	not non_blank(get(auth, ["role"]))
}

findings contains blocking("authorisation.incomplete", "/authorisation/authorised_at") if {
	authorised
	not authorised_at
}

findings contains blocking("authorisation.not_yet_valid", "/authorisation/authorised_at") if {
	authorised
	authorised_at > now
}

findings contains blocking("authorisation.expired", "/authorisation/expires_at") if {
	authorised
	authorised_at
	ts(get(auth, ["expires_at"])) < now
}

findings contains blocking("authorisation.expired", "/authorisation/authorised_at") if {
	authorised
	now - authorised_at > data.params.authorisation_max_age_days[tier] * ns_per_day
}

findings contains blocking("authorisation.before_review", "/authorisation/authorised_at") if {
	authorised
	authorised_at < review_completed
}

# --- deficiencies ---------------------------------------------------------

acceptable := data.params.acceptable_severity[tier]

severity_rank(d) := rank[d.severity] if is_string(d.severity) else := 3

needs_acceptance(d) if acceptable == null

needs_acceptance(d) if severity_rank(d) > rank[acceptable]

open_deficiencies contains [i, d] if {
	some i, d in list(input, ["deficiencies"])
	object.get(d, "status", null) != "resolved"
}

findings contains blocking("deficiency.unaccepted", sprintf("/deficiencies/%d", [i])) if {
	some [i, d] in open_deficiencies
	object.get(d, "acceptance", null) == null
	needs_acceptance(d)
}

acceptance_incomplete(a) if not non_blank(object.get(a, "accepted_by", null))

acceptance_incomplete(a) if object.get(a, "accepted_at", null) == null

acceptance_incomplete(a) if not non_blank(object.get(a, "rationale", null))

findings contains blocking("deficiency.acceptance_incomplete", sprintf("/deficiencies/%d/acceptance", [i])) if {
	some [i, d] in open_deficiencies
	a := object.get(d, "acceptance", null)
	a != null
	acceptance_incomplete(a)
}

findings contains blocking("deficiency.acceptance_expired", sprintf("/deficiencies/%d/acceptance/expires_at", [i])) if {
	some [i, d] in open_deficiencies
	a := object.get(d, "acceptance", null)
	a != null
	ts(object.get(a, "expires_at", null)) < now
}

# --- plan -----------------------------------------------------------------

plan := get(input, ["plan"])

stages := list(input, ["plan", "stages"])

complete(c) if {
	non_blank(object.get(c, "metric", null))
	object.get(c, "op", null) in ops
	is_number(object.get(c, "threshold", null))
}

findings contains blocking("plan.missing", "/plan") if plan == null

findings contains blocking("plan.missing", "/plan/stages") if {
	plan != null
	count(stages) == 0
}

findings contains blocking("plan.rollback_missing", "/plan/rollback/procedure") if {
	plan != null
	not non_blank(get(input, ["plan", "rollback", "procedure"]))
}

findings contains blocking("plan.rollback_untested", "/plan/rollback/tested") if {
	plan != null
	rank[tier] >= rank.high
	not is_true(get(input, ["plan", "rollback", "tested"]))
}

findings contains blocking("plan.triggers_missing", "/plan/rollback/triggers") if {
	plan != null
	not any_complete_trigger
}

any_complete_trigger if {
	some t in list(input, ["plan", "rollback", "triggers"])
	complete(t)
}

findings contains blocking("plan.staging_required", "/plan/stages") if {
	count(stages) > 0
	count(stages) < data.params.min_stages[tier]
}

findings contains blocking("plan.first_stage_too_large", "/plan/stages/0/traffic_percent") if {
	count(stages) > 0
	not first_stage_within_limit
}

first_stage_within_limit if {
	p := object.get(stages[0], "traffic_percent", null)
	is_number(p)
	p <= data.params.max_first_stage_percent[tier]
}

findings contains blocking("plan.stage_order", sprintf("/plan/stages/%d/traffic_percent", [i + 1])) if {
	some i in numbers.range(0, count(stages) - 2)
	a := object.get(stages[i], "traffic_percent", null)
	b := object.get(stages[i + 1], "traffic_percent", null)
	is_number(a)
	is_number(b)
	b < a
}

findings contains blocking("plan.criteria_missing", sprintf("/plan/stages/%d/criteria", [i])) if {
	some i, s in stages
	i < count(stages) - 1
	not stage_has_complete_criterion(s)
}

stage_has_complete_criterion(s) if {
	some c in list(s, ["criteria"])
	complete(c)
}

findings contains blocking("plan.criteria_missing", sprintf("/plan/stages/%d/criteria/%d", [i, j])) if {
	some i, s in stages
	some j, c in list(s, ["criteria"])
	not complete(c)
}

# --- safeguards -----------------------------------------------------------

consequential if object.get(input.system, "consequential", null) == null

consequential if input.system.consequential == true

findings contains blocking("safeguards.oversight_missing", "/safeguards/human_oversight") if {
	consequential
	not is_true(get(input, ["safeguards", "human_oversight"]))
}

findings contains blocking("safeguards.escalation_missing", "/safeguards/escalation_path") if {
	not non_blank(get(input, ["safeguards", "escalation_path"]))
}

findings contains blocking("safeguards.guidance_missing", "/safeguards/user_guidance") if {
	not non_blank(get(input, ["safeguards", "user_guidance"]))
}

findings contains blocking("safeguards.autonomy_unjustified", "/safeguards/autonomy_rationale_accepted") if {
	object.get(input.system, "autonomy", null) == "autonomous"
	not autonomy_justified
}

autonomy_justified if {
	is_true(get(input, ["safeguards", "autonomy_rationale_accepted"]))
	some c in list(input, ["safeguards", "compensating_controls"])
	non_blank(c)
}

# --- communication --------------------------------------------------------

comm := get(input, ["communication"])

findings contains blocking("communication.incomplete", sprintf("/communication/%s", [field])) if {
	some field in ["capabilities", "intended_use", "reliance_conditions"]
	not non_blank(get(comm, [field]))
}

findings contains blocking("communication.incomplete", "/communication/limitations") if {
	not any_limitation
}

any_limitation if {
	some l in list(input, ["communication", "limitations"])
	non_blank(l)
}

findings contains blocking("communication.late", "/communication/published_at") if not published_in_time

published_in_time if ts(get(comm, ["published_at"])) <= now

# --- monitoring -----------------------------------------------------------

findings contains blocking("monitoring.not_activated", "/monitoring/activated") if {
	not is_true(get(input, ["monitoring", "activated"]))
}

monitored contains trim_space(m) if {
	some m in list(input, ["monitoring", "metrics"])
	is_string(m)
}

findings contains blocking("monitoring.uncovered_trigger", sprintf("/plan/rollback/triggers/%d/metric", [i])) if {
	some i, t in list(input, ["plan", "rollback", "triggers"])
	m := object.get(t, "metric", null)
	non_blank(m)
	not trim_space(m) in monitored
}

findings contains blocking("monitoring.uncovered_trigger", sprintf("/plan/suspension_triggers/%d/metric", [i])) if {
	some i, t in list(input, ["plan", "suspension_triggers"])
	m := object.get(t, "metric", null)
	non_blank(m)
	not trim_space(m) in monitored
}

findings contains blocking("monitoring.initial_period_short", "/monitoring/intensive_period_hours") if {
	not intensive_enough
}

intensive_enough if {
	h := get(input, ["monitoring", "intensive_period_hours"])
	is_number(h)
	h >= data.params.min_intensive_period_hours[tier]
}

# --- supply chain ---------------------------------------------------------

findings contains blocking("supply_chain.unconfirmed", "/supply_chain/controls_confirmed") if {
	is_true(get(input, ["supply_chain", "third_party"]))
	not is_true(get(input, ["supply_chain", "controls_confirmed"]))
}

# --- decision -------------------------------------------------------------

denied if {
	some f in findings
	f.severity == "blocking"
}

outcome := "deny" if denied else := "allow"

first_stage := name if {
	not denied
	name := object.get(stages[0], "name", null)
	non_blank(name)
}

first_stage_or_null := first_stage if first_stage else := null

decision := {
	"outcome": outcome,
	"findings": [f | some f in findings],
	"first_stage": first_stage_or_null,
}

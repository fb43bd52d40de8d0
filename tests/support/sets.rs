//! Policy sets checked against the reference policy's own test cases
//! (docs/policy-sets.md), for any second member.

use stagegate::decision::combine::restrictiveness;
use stagegate::decision::{self, DecisionKind, Outcome};
use stagegate::policy::{ActivePolicy, Isolation, Limits, Runtime, set};

const REFERENCE: &str = "iso42001-reference";

fn kind_of(case: &serde_json::Value) -> DecisionKind {
    case["decision"].as_str().unwrap().parse().unwrap()
}

/// Every reference test case that is a well-formed request, with its
/// params (the bundle's, with the case's overrides).
pub fn reference_cases() -> Vec<(String, DecisionKind, String, serde_json::Value)> {
    let bundle = super::reference_bundle();
    let base: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&bundle.params().unwrap()).unwrap();
    let dir = super::root().join("policies/iso42001/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let cases: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for case in cases {
            if case["expect"].get("error").is_some() {
                continue;
            }
            let kind = kind_of(&case);
            if decision::decode(kind, case["input"].to_string().as_bytes()).is_err() {
                continue;
            }
            let mut params = base.clone();
            if let Some(over) = case["params"].as_object() {
                params.extend(over.clone());
            }
            out.push((
                case["name"].as_str().unwrap_or("?").to_string(),
                kind,
                serde_json::Value::Object(params).to_string(),
                case["input"].clone(),
            ));
        }
    }
    out
}

/// Decides every reference test case (and a Friday copy of each
/// progression) with the reference policy alone, `member` alone, and the
/// set of both, and checks the set: where `member` answers positively the
/// set answers like the reference; where it does not, the set gives the
/// more restrictive of the two; every finding names its member. Returns
/// (cases where `member` stayed quiet, fired, turned a positive reference
/// answer negative).
pub fn check_set_against_reference_cases(
    member: &stagegate::bundle::Bundle,
    limits: Limits,
) -> (usize, usize, usize) {
    let runtime = Runtime::new(limits).unwrap();
    let reference = super::reference_bundle();
    let component = runtime.compile(reference.wasm()).unwrap();
    let member_name = member.manifest.name.clone();
    let acme = ActivePolicy::load(&runtime, member, Isolation::Warm).unwrap();

    let mut cases = reference_cases();
    // The reference cases all fall on a Thursday; a Friday copy of each
    // promotion reaches the promotion freeze.
    let fridays: Vec<_> = cases
        .iter()
        .filter(|(_, kind, _, _)| *kind == DecisionKind::Progression)
        .map(|(name, kind, params, input)| {
            let mut input = input.clone();
            input["now"] = "2026-11-27T12:00:00Z".into();
            (
                format!("{name} (on a Friday)"),
                *kind,
                params.clone(),
                input,
            )
        })
        .collect();
    cases.extend(fridays);

    let (mut fired, mut quiet, mut tightened) = (0, 0, 0);
    let mut last_params = String::new();
    let mut policy = None;
    for (name, kind, params, input) in &cases {
        if *params != last_params || policy.is_none() {
            policy = Some(
                ActivePolicy::with_component(
                    &runtime,
                    reference,
                    &component,
                    params.clone(),
                    Isolation::Warm,
                )
                .unwrap(),
            );
            last_params = params.clone();
        }
        let reference = policy.as_ref().unwrap();
        let request = decision::decode(*kind, input.to_string().as_bytes()).unwrap();
        let alone = reference.decide(request.clone()).envelope;
        let rules = acme.decide(request.clone()).envelope;
        let both = set::decide("set", &[reference, &acme], request);
        assert!(both.error.is_none(), "{name}: {:?}", both.error);
        let both = both.envelope;

        // Every finding names the member that raised it; the envelope
        // names both members.
        assert!(
            both.findings.iter().all(|f| f.bundle.is_some()),
            "{name}: {both:#?}"
        );
        let members: Vec<&str> = both
            .policy
            .members
            .iter()
            .map(|m| m.bundle.as_str())
            .collect();
        assert_eq!(members, [REFERENCE, member_name.as_str()], "{name}");
        let from = |member: &str| -> Vec<String> {
            both.findings
                .iter()
                .filter(|f| f.bundle.as_deref() == Some(member))
                .map(|f| f.code.clone())
                .collect()
        };
        assert_eq!(
            from(REFERENCE),
            alone.codes().map(str::to_string).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(
            from(&member_name),
            rules.codes().map(str::to_string).collect::<Vec<_>>(),
            "{name}"
        );

        if restrictiveness(rules.outcome) == 0 {
            quiet += 1;
            assert_eq!(both.outcome, alone.outcome, "{name}: {both:#?}");
            assert_eq!(both.first_stage, alone.first_stage, "{name}");
            assert_eq!(both.next_stage, alone.next_stage, "{name}");
            assert_eq!(both.traffic_percent, alone.traffic_percent, "{name}");
            assert_eq!(both.rollback_to, alone.rollback_to, "{name}");
        } else {
            fired += 1;
            let expected = if restrictiveness(rules.outcome) > restrictiveness(alone.outcome) {
                rules.outcome
            } else {
                alone.outcome
            };
            assert_eq!(both.outcome, expected, "{name}: {both:#?}");
            if matches!(alone.outcome, Outcome::Allow | Outcome::Promote) {
                tightened += 1;
                assert_eq!(both.first_stage, None, "{name}");
                assert_eq!(both.next_stage, None, "{name}");
            }
        }
    }
    (quiet, fired, tightened)
}

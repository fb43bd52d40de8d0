//! The sandbox under hostile code: every misbehaviour fails closed within
//! its deadline, and the same runtime keeps serving afterwards.

use crate::support;

use std::time::{Duration, Instant};

use stagegate::decision::{DecisionKind, Outcome};
use stagegate::policy::{ActivePolicy, Isolation, Limits, PolicyError, Runtime};

fn runtime(deadline_ms: u64) -> Runtime {
    Runtime::new(Limits {
        deadline: Duration::from_millis(deadline_ms),
        memory_bytes: 32 << 20,
        ..Limits::default()
    })
    .expect("runtime")
}

fn request(kind: DecisionKind, id: &str) -> Vec<u8> {
    let plan =
        r#"{"stages":[{"name":"a","traffic_percent":5},{"name":"b","traffic_percent":100}]}"#;
    let body = match kind {
        DecisionKind::Gate => format!(
            r#"{{"now":"2026-11-26T12:00:00Z","system":{{"id":"{id}","risk_tier":"low"}}}}"#
        ),
        DecisionKind::Progression => format!(
            r#"{{"now":"2026-11-26T12:00:00Z","system":{{"id":"{id}","risk_tier":"low"}},"plan":{plan},"current_stage":"a","target_stage":"b","stage_entered_at":"2026-11-20T00:00:00Z"}}"#
        ),
        DecisionKind::Monitoring => format!(
            r#"{{"now":"2026-11-26T12:00:00Z","system":{{"id":"{id}","risk_tier":"low"}},"plan":{plan},"current_stage":"a","deployed_at":"2026-11-20T00:00:00Z"}}"#
        ),
    };
    body.into_bytes()
}

#[test]
fn every_hostile_behaviour_fails_closed_within_the_deadline_and_the_next_call_works() {
    // Generous enough that the memory bomb reaches its cap before the
    // deadline even on a loaded CI machine.
    let rt = runtime(500);
    for isolation in [Isolation::Warm, Isolation::Fresh] {
        let policy =
            ActivePolicy::load(&rt, support::hostile_bundle(), isolation).expect("load hostile");
        for kind in DecisionKind::ALL {
            for (id, cause) in [
                ("spin", "deadline"),
                ("allocate", "memory"),
                ("panic", "trap"),
                ("recurse", "trap"),
                ("deep", "stack"),
                ("error", "guest_error"),
            ] {
                if id == "error" && kind != DecisionKind::Gate {
                    continue;
                }
                let started = Instant::now();
                let d = policy
                    .decide_json(kind, &request(kind, id))
                    .expect("valid request");
                let elapsed = started.elapsed();
                let err = d
                    .error
                    .as_ref()
                    .unwrap_or_else(|| panic!("{id}/{kind}: no error"));
                assert_eq!(err.cause(), cause, "{id}/{kind}: {err}");
                assert_eq!(
                    d.envelope.outcome,
                    Outcome::fail_closed(kind),
                    "{id}/{kind}"
                );
                assert_eq!(d.envelope.findings.len(), 1);
                assert_eq!(d.envelope.findings[0].code, "policy.error");
                // Correctness, not speed: the call was cut off instead of hanging.
                assert!(elapsed < support::HANG, "{id}/{kind} took {elapsed:?}");

                let ok = policy
                    .decide_json(kind, &request(kind, "fine"))
                    .expect("valid request");
                assert!(ok.error.is_none(), "{id}/{kind} then fine: {:?}", ok.error);
                assert_ne!(ok.envelope.outcome, Outcome::fail_closed(kind));
            }
        }
    }
}

#[test]
fn a_spinning_policy_is_interrupted_at_its_deadline_not_long_after() {
    // The same spin under a 30 ms and a 600 ms deadline, side by side: the
    // call is never cut off before its deadline, and the short deadline
    // stops it well before the long one does (were the deadline checked
    // late, or only now and then, both would stop at about the same time).
    // A ratio, not a number of milliseconds: a loaded machine slows both.
    let spin = |deadline_ms: u64| {
        let rt = runtime(deadline_ms);
        let policy = ActivePolicy::load(&rt, support::hostile_bundle(), Isolation::Warm).unwrap();
        let started = Instant::now();
        let d = policy
            .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "spin"))
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            matches!(d.error, Some(PolicyError::Deadline(ms)) if ms == u128::from(deadline_ms)),
            "{:?}",
            d.error
        );
        assert!(
            elapsed >= Duration::from_millis(deadline_ms),
            "stopped early: {elapsed:?} under a {deadline_ms} ms deadline"
        );
        elapsed
    };
    let short = spin(30);
    let long = spin(600);
    eprintln!("spin stopped after {short:?} (30 ms deadline), {long:?} (600 ms deadline)");
    assert!(
        short * 2 <= long,
        "stopped late: {short:?} under 30 ms against {long:?} under 600 ms"
    );
}

#[test]
fn a_trapped_instance_is_discarded_not_reused() {
    let rt = runtime(50);
    let policy = ActivePolicy::load(&rt, support::hostile_bundle(), Isolation::Warm).unwrap();
    assert_eq!(
        policy.loaded.warm_instances(),
        1,
        "load keeps its smoke-tested instance"
    );
    policy
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "fine"))
        .unwrap();
    assert_eq!(
        policy.loaded.warm_instances(),
        1,
        "a normal call returns its instance"
    );
    policy
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "panic"))
        .unwrap();
    assert_eq!(
        policy.loaded.warm_instances(),
        0,
        "a trapped instance is dropped"
    );
    policy
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "error"))
        .unwrap();
    assert_eq!(
        policy.loaded.warm_instances(),
        1,
        "a guest error leaves the instance intact"
    );
}

#[test]
fn a_policy_that_misbehaves_in_configure_is_refused_at_load() {
    let rt = runtime(500);
    let bundle = support::hostile_bundle();
    let component = rt.compile(bundle.wasm()).unwrap();
    for (params, cause) in [
        (r#"{"x":"spin"}"#, "deadline"),
        (r#"{"x":"panic"}"#, "trap"),
        (r#"{"x":"allocate"}"#, "memory"),
    ] {
        let err =
            ActivePolicy::with_component(&rt, bundle, &component, params.into(), Isolation::Warm)
                .err()
                .unwrap_or_else(|| panic!("{params} loaded"));
        match err {
            stagegate::policy::LoadError::Policy(e) => {
                assert_eq!(e.cause(), cause, "{params}: {e}")
            }
            other => panic!("{params}: {other}"),
        }
    }
}

#[test]
fn reference_params_that_do_not_parse_are_refused_at_load_naming_the_key() {
    let rt = runtime(100);
    let bundle = support::reference_bundle();
    let component = rt.compile(bundle.wasm()).unwrap();
    let err = ActivePolicy::with_component(
        &rt,
        bundle,
        &component,
        r#"{"min_stage": {}}"#.into(),
        Isolation::Warm,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("min_stage"), "{err}");
}

#[test]
fn a_component_that_is_not_a_policy_is_refused_at_load() {
    let rt = runtime(100);
    // A valid component that exports nothing.
    let empty = wat_component();
    let component = rt.compile(&empty).unwrap();
    let err = ActivePolicy::with_component(
        &rt,
        support::reference_bundle(),
        &component,
        "{}".into(),
        Isolation::Warm,
    )
    .err()
    .expect("refused");
    assert!(
        err.to_string()
            .contains("does not implement the stagegate:policy world"),
        "{err}"
    );
}

/// The binary encoding of `(component)`: magic, component version/layer.
fn wat_component() -> Vec<u8> {
    vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
}

#[test]
fn garbage_instead_of_a_component_fails_to_compile_with_a_reason() {
    let rt = runtime(100);
    let err = rt.compile(b"definitely not wasm").expect_err("refused");
    assert_eq!(err.cause(), "compile");
}

#[test]
fn a_bundles_own_limits_replace_the_server_wide_ones_for_that_bundle_alone() {
    use stagegate::policy::BundleLimits;
    // Server-wide: 32 MiB and a deadline long enough that the spin below
    // would take seconds. The bundle's own: 8 MiB, 50 ms, 2 warm instances;
    // a larger memory cap than the server's sizes the pool's slots.
    let rt = Runtime::new(Limits {
        deadline: Duration::from_millis(3_000),
        memory_bytes: 32 << 20,
        largest_bundle_memory_bytes: 96 << 20,
        ..Limits::default()
    })
    .expect("runtime");
    let bundle = support::hostile_bundle();
    let component = rt.compile(bundle.wasm()).unwrap();
    let own = BundleLimits {
        memory_mib: Some(8),
        deadline_ms: Some(50),
        warm_instances: Some(2),
    };
    let tight = ActivePolicy::with_limits(
        &rt,
        bundle,
        &component,
        bundle.params().unwrap(),
        Isolation::Warm,
        &own,
    )
    .unwrap();
    // The call was cut off by the bundle's 50 ms, not the server's 3 s:
    // the deadline a call is given is the one its error names.
    let d = tight
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "spin"))
        .unwrap();
    assert!(
        matches!(d.error, Some(PolicyError::Deadline(50))),
        "the bundle's 50 ms deadline did not apply: {:?}",
        d.error
    );
    let d = tight
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "allocate"))
        .unwrap();
    match d.error {
        Some(PolicyError::Memory(bytes)) => assert_eq!(bytes, 8 << 20),
        other => panic!("expected the bundle's 8 MiB cap, got {other:?}"),
    }
    tight.loaded.prewarm(10).unwrap();
    assert_eq!(tight.loaded.warm_instances(), 2);

    // A bundle with a larger cap than the server's may use it.
    let roomy = ActivePolicy::with_limits(
        &rt,
        bundle,
        &component,
        bundle.params().unwrap(),
        Isolation::Warm,
        &BundleLimits {
            memory_mib: Some(96),
            deadline_ms: Some(2_000),
            warm_instances: None,
        },
    )
    .unwrap();
    let d = roomy
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "allocate"))
        .unwrap();
    match d.error {
        Some(PolicyError::Memory(bytes)) => assert_eq!(bytes, 96 << 20),
        other => panic!("expected the bundle's 96 MiB cap, got {other:?}"),
    }
    // Another bundle on the same runtime keeps the server-wide limits.
    let plain = ActivePolicy::load(&rt, bundle, Isolation::Warm).unwrap();
    let d = plain
        .decide_json(DecisionKind::Gate, &request(DecisionKind::Gate, "allocate"))
        .unwrap();
    match d.error {
        Some(PolicyError::Memory(bytes)) => assert_eq!(bytes, 32 << 20),
        other => panic!("expected the server-wide 32 MiB cap, got {other:?}"),
    }
}

/// The reference policy's rules linked natively, converted with the macro
/// the host uses for wasmtime's types: the answer a sandboxed call must
/// match.
mod native {
    stagegate::wit_conversions!(v1_1: stagegate_sdk::bindings::stagegate::policy::types);
}

#[test]
fn a_request_larger_than_the_reference_policys_arena_is_decided_as_natively_and_the_instance_goes_on()
 {
    // The reference policy serves a call's blocks from a 512 KiB arena and
    // from its system allocator past that (stagegate_sdk::arena). A
    // thousand failing results with 700-byte names are more than the arena
    // holds: the request alone lowers 700 KB into the guest, and each
    // result becomes a finding quoting its name.
    let bundle = support::reference_bundle();
    let policy = ActivePolicy::load(&runtime(2_000), bundle, Isolation::Warm).unwrap();
    let params = iso42001::params::Params::parse(&bundle.params().unwrap()).unwrap();
    let native = |body: &[u8]| {
        let stagegate::decision::Request::Gate(r) =
            stagegate::decision::decode(DecisionKind::Gate, body).unwrap()
        else {
            unreachable!("decoded as a gate request")
        };
        native::gate_verdict(iso42001::gate::decide(&native::gate_request(r), &params))
    };
    let sandboxed = |body: &[u8]| {
        let (verdict, error) =
            policy.verdict(stagegate::decision::decode(DecisionKind::Gate, body).unwrap());
        assert!(error.is_none(), "{error:?}");
        verdict
    };
    let results: Vec<serde_json::Value> = (0..1_000)
        .map(
            |i| serde_json::json!({"name": format!("{i:04}-{}", "x".repeat(695)), "passed": false}),
        )
        .collect();
    let large = serde_json::to_vec(&serde_json::json!({
        "now": "2026-11-26T12:00:00Z",
        "system": {"id": "large", "risk_tier": "high"},
        "verification": {"complete": true, "results": results},
    }))
    .unwrap();
    let small = request(DecisionKind::Gate, "small");

    let small_before = sandboxed(&small);
    let decided = sandboxed(&large);
    assert_eq!(decided, native(&large));
    assert!(
        decided.findings.len() >= 1_000,
        "every failing result is a finding: {}",
        decided.findings.len()
    );
    // The same instance (the pool holds one) answers a small request as
    // before the large one, and the large one again alike: the arena
    // started over, and nothing it handed out was handed out twice.
    assert_eq!(policy.loaded.warm_instances(), 1);
    assert_eq!(sandboxed(&small), small_before);
    assert_eq!(sandboxed(&small), native(&small));
    assert_eq!(sandboxed(&large), decided);
}

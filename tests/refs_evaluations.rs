//! Refs on deployments and read-only evaluations, end to end on SQLite
//! and PostgreSQL: a ref resolves to the newest deployment created with
//! it, an older one is superseded when the newer reaches full exposure,
//! and evaluations decide without changing anything while appearing in
//! the log marked read-only.

use crate::support;

use serde_json::{Value, json};
use support::records::{
    Backend, World, get, observe, plan, post, registered_release, release_body,
};

support::on_both_backends!(
    a_ref_resolves_to_the_newest_deployment_and_the_older_is_superseded_at_full_exposure,
    malformed_refs_are_refused_naming_the_field,
    a_deployment_created_at_its_plans_only_stage_supersedes_at_once,
    read_only_evaluations_change_nothing_and_are_logged_read_only,
    evaluations_refuse_bad_input_with_a_clear_4xx,
);

const REF: &str = "risk/credit-scoring";

fn deploy_with_ref(s: &support::server::Server, release: &str) -> String {
    let r = post(
        s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(), "refs": {"kubernetes": REF}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["deployment"]["id"].as_str().unwrap().to_string()
}

fn view(s: &support::server::Server, id: &str) -> Value {
    get(s, "audit", &format!("/v1/deployments/{id}")).json()
}

fn events(s: &support::server::Server, id: &str) -> Vec<String> {
    view(s, id)["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

fn promote(s: &support::server::Server, id: &str, target: &str) {
    let v = observe(s, id, 0.01, 20_000).json();
    assert_eq!(v["decision"]["outcome"], "healthy", "{v:#}");
    let r = post(
        s,
        "a.lee",
        &format!("/v1/deployments/{id}/reviews"),
        &json!({"outcome": "approved", "target_stage": target}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = post(
        s,
        "j.doe",
        &format!("/v1/deployments/{id}/progressions"),
        &json!({"target_stage": target, "authorisation": {"scope": [target]}}),
        &[],
    )
    .json();
    assert_eq!(v["decision"]["outcome"], "promote", "{target}: {v:#}");
}

fn a_ref_resolves_to_the_newest_deployment_and_the_older_is_superseded_at_full_exposure(
    b: Backend,
) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let d1 = deploy_with_ref(&s, &registered_release(&s, "2.3.0"));
    assert_eq!(view(&s, &d1)["refs"], json!({"kubernetes": REF}));
    let found = get(&s, "gw", &format!("/v1/deployments?ref={REF}"));
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.json()["id"], d1.as_str());

    // A newer deployment with the same ref: the ref now finds it, and the
    // older one is left as it is while the newer one is partial.
    let d2 = deploy_with_ref(&s, &registered_release(&s, "2.3.1"));
    assert_eq!(
        get(&s, "gw", &format!("/v1/deployments?ref={REF}")).json()["id"],
        d2.as_str()
    );
    promote(&s, &d2, "regional");
    assert_eq!(events(&s, &d1), ["created"]);

    // Full exposure: the older deployment is superseded in its history;
    // its status stays what it was, the newer one's history is untouched.
    promote(&s, &d2, "general");
    let older = view(&s, &d1);
    assert_eq!(older["status"], "active");
    let last = older["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "superseded", "{older:#}");
    assert_eq!(last["detail"]["superseded_by"], d2.as_str());
    assert_eq!(last["detail"]["shared_ref"], format!("kubernetes={REF}"));
    assert!(!events(&s, &d2).contains(&"superseded".to_string()));

    // The refs are part of the sealed row: the chain verifies, and a
    // hand-edited ref is named.
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
    w.sql(&format!(
        "UPDATE deployments SET refs = '{{\"kubernetes\":\"risk/other\"}}' WHERE id = '{d1}'"
    ));
    let (code, out) = w.audit_verify();
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&d1), "{out}");
}

fn malformed_refs_are_refused_naming_the_field(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    for (refs, path) in [
        (json!({"kubernetes": "no-namespace"}), "/refs/kubernetes"),
        (json!({"kubernetes": "Risk/credit"}), "/refs/kubernetes"),
        (json!({"Bad Key": "x"}), "/refs/Bad Key"),
    ] {
        let r = post(
            &s,
            "ops",
            "/v1/deployments",
            &json!({"release_id": release, "plan": plan(), "refs": refs}),
            &[],
        );
        assert_eq!(r.status, 422, "{refs}: {}", r.body);
        assert_eq!(r.json()["error"]["path"], path, "{}", r.body);
    }
    let r = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(), "refs": {"kubernetes": 7}}),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Nothing was created by the refusals.
    let r = get(&s, "gw", "/v1/deployments?ref=risk/credit");
    assert_eq!(r.status, 404, "{}", r.body);
}

fn decision(s: &support::server::Server, id: &str) -> Value {
    let r = get(s, "audit", &format!("/v1/decisions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The decision counter of `kind` and `outcome` on /metrics.
fn decisions_counted(s: &support::server::Server, kind: &str, outcome: &str) -> f64 {
    let metrics = s.get("/metrics", None).body;
    let labels = [
        format!("decision=\"{kind}\""),
        format!("outcome=\"{outcome}\""),
    ];
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && labels.iter().all(|x| l.contains(x.as_str())))
        .filter(|l| l.split('{').next().is_some_and(|n| n.ends_with("_total")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn read_only_evaluations_change_nothing_and_are_logged_read_only(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let d = deploy_with_ref(&s, &registered_release(&s, "2.3.0"));
    // Pilot with an error rate above the pilot's criterion: an alert.
    assert_eq!(
        observe(&s, &d, 0.03, 2000).json()["decision"]["outcome"],
        "alert"
    );
    let before = view(&s, &d);

    let r = get(
        &s,
        "gw",
        &format!("/v1/deployments/{d}/evaluations/monitoring"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let m = r.json();
    assert_eq!(m["read_only"], true);
    assert_eq!(m["decision"]["decision"], "monitoring");
    assert_eq!(m["decision"]["outcome"], "alert", "{m:#}");
    assert_eq!(m["deployment"]["id"], d.as_str());

    let holds = decisions_counted(&s, "progression", "hold");
    let r = get(
        &s,
        "audit",
        &format!("/v1/deployments/{d}/evaluations/progression?target_stage=regional"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let p = r.json();
    assert_eq!(p["decision"]["decision"], "progression");
    assert_eq!(p["decision"]["outcome"], "hold", "{p:#}");

    // Nothing changed: same version, same history, same route.
    assert_eq!(view(&s, &d), before);

    // Both are in the log, marked read-only and tied to the deployment.
    for (e, kind) in [(&m, "monitoring"), (&p, "progression")] {
        let id = e["decision"]["decision_id"].as_str().unwrap();
        let entry = decision(&s, id);
        assert_eq!(entry["read_only"], true, "{entry:#}");
        assert_eq!(entry["kind"], kind);
        assert_eq!(entry["deployment_id"], d.as_str());
    }
    // A transition's entry is not marked.
    let transition = before["history"][0]["decision_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(decision(&s, &transition).get("read_only").is_none());

    // It was counted like every decision.
    assert_eq!(decisions_counted(&s, "progression", "hold"), holds + 1.0);

    // A breach: the evaluation says roll back, but only says it.
    let r = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/observations?evaluate=false"),
        &json!({"observations": [{"metric": "error_rate", "value": 0.08, "samples": 3000}]}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let e = get(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/evaluations/monitoring"),
    )
    .json();
    assert_eq!(e["decision"]["outcome"], "rollback", "{e:#}");
    let after = view(&s, &d);
    assert_eq!(after["status"], "active");
    assert_eq!(after["version"], before["version"]);

    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
}

fn evaluations_refuse_bad_input_with_a_clear_4xx(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let d = deploy_with_ref(&s, &registered_release(&s, "2.3.0"));
    let ev =
        |who: &str, path: &str| get(&s, who, &format!("/v1/deployments/{d}/evaluations/{path}"));
    let r = ev("gw", "progression");
    assert_eq!(
        (r.status, r.json()["error"]["path"].clone()),
        (400, json!("target_stage")),
        "{}",
        r.body
    );
    let r = ev("gw", "progression?target_stage=moon");
    assert_eq!(
        (r.status, r.json()["error"]["path"].clone()),
        (422, json!("target_stage")),
        "{}",
        r.body
    );
    assert_eq!(ev("a.lee", "monitoring").status, 403);
    assert_eq!(ev("pub", "monitoring").status, 403);
    let r = get(&s, "gw", "/v1/deployments/nope/evaluations/monitoring");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = get(&s, "gw", "/v1/deployments?ref=nope");
    assert_eq!(
        (r.status, r.json()["error"]["path"].clone()),
        (422, json!("ref")),
        "{}",
        r.body
    );
    let r = get(&s, "gw", "/v1/deployments");
    assert_eq!(r.status, 422, "{}", r.body);

    // Rolled back: monitoring may still be asked, a progression may not.
    let r = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/rollback"),
        &json!({"reason": "drill"}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ev("gw", "monitoring").status, 200);
    assert_eq!(ev("gw", "progression?target_stage=regional").status, 409);
}

/// A low-risk system's release (one stage may expose everything), with
/// its review, authorisation and the acceptance of D-7.
fn low_risk_release(s: &support::server::Server, version: &str) -> String {
    let r = post(
        s,
        "ops",
        "/v1/systems",
        &json!({"id": "faq-bot", "risk_tier": "low"}),
        &[],
    );
    assert!(r.status == 201 || r.status == 409, "{}", r.body);
    let r = post(
        s,
        "ops",
        "/v1/systems/faq-bot/releases",
        &release_body(version),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = format!("faq-bot@{version}");
    for (who, what, body) in [
        ("a.lee", "reviews", json!({"outcome": "approved"})),
        ("j.doe", "authorisations", json!({})),
        (
            "j.doe",
            "acceptances",
            json!({"deficiency_id": "D-7", "rationale": "monitored"}),
        ),
    ] {
        let r = post(s, who, &format!("/v1/releases/{id}/{what}"), &body, &[]);
        assert_eq!(r.status, 201, "{what}: {}", r.body);
    }
    id
}

fn a_deployment_created_at_its_plans_only_stage_supersedes_at_once(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let mut one_stage = plan();
    let last = one_stage["stages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    one_stage["stages"] = json!([last]);
    let deploy = |release: &str| {
        let r = post(
            &s,
            "ops",
            "/v1/deployments",
            &json!({"release_id": release, "plan": one_stage, "refs": {"kubernetes": "support/faq-bot"}}),
            &[],
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["deployment"]["id"].as_str().unwrap().to_string()
    };
    let d1 = deploy(&low_risk_release(&s, "1.0.0"));
    assert_eq!(events(&s, &d1), ["created"]);
    let d2 = deploy(&low_risk_release(&s, "1.1.0"));
    assert_eq!(events(&s, &d1), ["created", "superseded"]);
    assert_eq!(events(&s, &d2), ["created"]);
    assert_eq!(view(&s, &d1)["status"], "active");
}

//! Deployment records end to end, on SQLite and on PostgreSQL: the
//! lifecycle decided by the policy, concurrency, idempotency, refusals that
//! write nothing, a tamper-evident decision log, and a crash.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::records::{Backend, World, deploy, get, observe, post, registered_release};

support::on_both_backends!(
    a_release_walks_from_gate_to_rollback_and_its_fix_to_general_availability,
    two_concurrent_promotions_one_succeeds_the_other_gets_409,
    refused_progressions_write_nothing,
    a_retried_write_with_the_same_idempotency_key_acts_once,
    identities_and_roles_come_from_the_token,
    stateless_decisions_are_logged_and_readable,
    an_edited_log_row_is_named_by_audit_verify,
    every_kind_of_record_row_edited_by_hand_is_named_by_audit_verify,
    a_history_rewritten_with_recomputed_hashes_fails_the_signed_checkpoint,
    concurrent_identical_requests_with_one_idempotency_key_get_one_answer,
    a_future_dated_observation_is_refused_with_its_path_and_nothing_is_stored,
    a_deployment_record_proves_its_own_entries_without_rehashing_the_log,
    a_crash_loses_no_acknowledged_write_and_leaves_every_state_explained,
);

/// These tests count decision log entries; a gate `allow` about an
/// artifact also commits its receipt's row to the chain (tested in
/// tests/attestations.rs), so receipts are off here.
const NO_RECEIPTS: &str = "\n[receipts]\nenabled = false\n";

fn history(s: &support::server::Server, id: &str) -> Vec<Value> {
    get(s, "audit", &format!("/v1/deployments/{id}")).json()["history"]
        .as_array()
        .unwrap()
        .clone()
}

fn events(s: &support::server::Server, id: &str) -> Vec<String> {
    history(s, id)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

fn codes(v: &Value) -> Vec<String> {
    v["decision"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn a_release_walks_from_gate_to_rollback_and_its_fix_to_general_availability(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let r1 = registered_release(&s, "2.3.0");
    let d1 = deploy(&s, &r1);
    assert_eq!(
        get(&s, "gw", &format!("/v1/deployments/{d1}/route")).json()["stage"],
        "pilot"
    );

    // Error rate above the pilot's criterion: the promotion is held.
    let v = observe(&s, &d1, 0.03, 2000).json();
    assert_eq!(v["decision"]["outcome"], "alert", "{v:#}");
    assert_eq!(
        post(
            &s,
            "a.lee",
            &format!("/v1/deployments/{d1}/reviews"),
            &json!({"outcome": "approved", "target_stage": "regional"}),
            &[]
        )
        .status,
        201
    );
    let r = post(
        &s,
        "j.doe",
        &format!("/v1/deployments/{d1}/progressions"),
        &json!({"target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["decision"]["outcome"], "hold");
    assert!(
        codes(&v).contains(&"progression.criterion_failed".to_string()),
        "{v:#}"
    );
    assert_eq!(v["deployment"]["stage"], "pilot");

    // A breached rollback trigger rolls back by itself.
    let v = observe(&s, &d1, 0.08, 3000).json();
    assert_eq!(v["decision"]["outcome"], "rollback");
    assert_eq!(v["deployment"]["status"], "rolled_back");
    assert_eq!(
        get(&s, "gw", &format!("/v1/deployments/{d1}/route")).json()["status"],
        "rolled_back"
    );
    assert_eq!(events(&s, &d1), ["created", "alert", "held", "rolled_back"]);

    // The fix goes all the way.
    let r2 = registered_release(&s, "2.3.1");
    let d2 = deploy(&s, &r2);
    for target in ["regional", "general"] {
        let v = observe(&s, &d2, 0.01, 20_000).json();
        assert_eq!(v["decision"]["outcome"], "healthy", "{v:#}");
        assert_eq!(
            post(
                &s,
                "a.lee",
                &format!("/v1/deployments/{d2}/reviews"),
                &json!({"outcome": "approved", "target_stage": target}),
                &[]
            )
            .status,
            201
        );
        let v = post(
            &s,
            "j.doe",
            &format!("/v1/deployments/{d2}/progressions"),
            &json!({"target_stage": target, "authorisation": {"scope": [target]}}),
            &[],
        )
        .json();
        assert_eq!(v["decision"]["outcome"], "promote", "{target}: {v:#}");
        assert_eq!(v["deployment"]["stage"], target);
    }
    let route = get(&s, "gw", &format!("/v1/deployments/{d2}/route")).json();
    assert_eq!(route["traffic_percent"], 100.0);
    assert_eq!(events(&s, &d2), ["created", "promoted", "promoted"]);

    // The exported records tell that story.
    let rec1 = get(&s, "audit", &format!("/v1/deployments/{d1}/record")).json();
    assert_eq!(rec1["deployment"]["status"], "rolled_back");
    let kinds: Vec<&str> = rec1["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["gate", "monitoring", "progression", "monitoring"]);
    assert!(rec1["chain"]["log_verified"].as_bool().unwrap());
    assert!(
        rec1["chain"]["proof"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["matches"] == true)
    );
    assert_eq!(rec1["acceptances"][0]["accepted_by"], "j.doe");
    assert_eq!(rec1["authorisations"][0]["role"], "Head of AI Risk");
    let rec2 = get(&s, "audit", &format!("/v1/deployments/{d2}/record")).json();
    assert_eq!(rec2["deployment"]["stage"], "general");
    assert_eq!(
        rec2["reviews"].as_array().unwrap().len(),
        3,
        "release review + two progression reviews"
    );
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
}

fn two_concurrent_promotions_one_succeeds_the_other_gets_409(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = Arc::new(w.start());
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    observe(&s, &d, 0.01, 5000);
    post(
        &s,
        "a.lee",
        &format!("/v1/deployments/{d}/reviews"),
        &json!({"outcome": "approved"}),
        &[],
    );
    let version = get(&s, "audit", &format!("/v1/deployments/{d}")).json()["version"]
        .as_i64()
        .unwrap()
        .to_string();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (s, d, version, barrier) = (s.clone(), d.clone(), version.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(
                    &s,
                    "j.doe",
                    &format!("/v1/deployments/{d}/progressions"),
                    &json!({"target_stage": "regional"}),
                    &[("If-Match", &version)],
                )
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().unwrap().status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(events(&s, &d), ["created", "promoted"]);
    let v = get(&s, "audit", &format!("/v1/deployments/{d}")).json();
    assert_eq!(v["stage"], "regional");
    assert_eq!(v["version"], 2);
}

fn refused_progressions_write_nothing(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    let before = get(&s, "audit", &format!("/v1/deployments/{d}/record")).json();
    let p = format!("/v1/deployments/{d}/progressions");

    let r = post(
        &s,
        "j.doe",
        &p,
        &json!({"target_stage": "regional", "authorisation": {"authorised_by": "someone.else"}}),
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("names 'someone.else' but the caller is 'j.doe'"),
        "{}",
        r.body
    );
    let r = post(
        &s,
        "j.doe",
        &p,
        &json!({"target_stage": "regional", "authorisation": {"expires_at": "2020-01-01T00:00:00Z"}}),
        &[],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/authorisation/expires_at");
    let r = post(&s, "j.doe", &p, &json!({"target_stage": "worldwide"}), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/target_stage");
    let r = post(
        &s,
        "j.doe",
        "/v1/deployments/01NOSUCHDEPLOYMENT0000000/progressions",
        &json!({"target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post(
        &s,
        "j.doe",
        &p,
        &json!({"target_stage": "regional"}),
        &[("If-Match", "7")],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    // A malformed body is 400 here as on /v1/decisions; a well-formed one
    // with a value outside its domain is 422.
    let r = post(&s, "j.doe", &p, &json!({"target": "regional"}), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/target");
    // Bodies are decoded as strictly as decision requests: one JSON
    // object, nothing after it, never an array read field by field.
    let raw = |body: &str| {
        s.send(
            "POST",
            &p,
            Some(&support::records::token("j.doe")),
            Some("application/json"),
            Some(body.as_bytes()),
        )
    };
    let r = raw(r#"{"target_stage": "regional"} {"target_stage": "global"}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("trailing characters"), "{}", r.body);
    let r = raw(r#"["regional"]"#);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json()["error"]["message"],
        "expected the request as a JSON object, found an array"
    );

    let after = get(&s, "audit", &format!("/v1/deployments/{d}/record")).json();
    assert_eq!(before["history"], after["history"]);
    assert_eq!(before["decisions"], after["decisions"]);
    assert_eq!(before["authorisations"], after["authorisations"]);
    assert_eq!(before["chain"]["head"], after["chain"]["head"]);
}

fn a_retried_write_with_the_same_idempotency_key_acts_once(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let body = json!({"release_id": release, "plan": support::records::plan()});
    let first = post(
        &s,
        "ops",
        "/v1/deployments",
        &body,
        &[("Idempotency-Key", "deploy-2.3.0")],
    );
    assert_eq!(first.status, 201, "{}", first.body);
    let again = post(
        &s,
        "ops",
        "/v1/deployments",
        &body,
        &[("Idempotency-Key", "deploy-2.3.0")],
    );
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        first.json()["deployment"]["id"],
        again.json()["deployment"]["id"]
    );
    let other = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": {"stages": []}}),
        &[("Idempotency-Key", "deploy-2.3.0")],
    );
    assert_eq!(other.status, 422, "{}", other.body);
    let d = first.json()["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rb = json!({"reason": "pager alert"});
    let a = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/suspend"),
        &rb,
        &[("Idempotency-Key", "k1")],
    );
    let b2 = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/suspend"),
        &rb,
        &[("Idempotency-Key", "k1")],
    );
    assert_eq!(
        (a.status, b2.status),
        (200, 200),
        "{} / {}",
        a.body,
        b2.body
    );
    assert_eq!(events(&s, &d), ["created", "suspended"]);
    // Without the key, a second suspension is a conflict, not a second event.
    assert_eq!(
        post(&s, "ops", &format!("/v1/deployments/{d}/suspend"), &rb, &[]).status,
        409
    );
}

fn identities_and_roles_come_from_the_token(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    assert_eq!(
        post(
            &s,
            "ops",
            &format!("/v1/releases/{release}/authorisations"),
            &json!({}),
            &[]
        )
        .status,
        403
    );
    assert_eq!(
        post(
            &s,
            "gw",
            "/v1/deployments",
            &json!({"release_id": release, "plan": support::records::plan()}),
            &[]
        )
        .status,
        403
    );
    assert_eq!(get(&s, "gw", "/v1/deployments/x/record").status, 403);
    let d = deploy(&s, &release);
    assert_eq!(
        get(&s, "gw", &format!("/v1/deployments/{d}/route")).status,
        200
    );
    assert_eq!(
        get(&s, "audit", &format!("/v1/deployments/{d}/record")).status,
        200
    );
    // The same person reviews and authorises a high-risk progression: held.
    observe(&s, &d, 0.01, 5000);
    post(
        &s,
        "j.doe",
        &format!("/v1/deployments/{d}/reviews"),
        &json!({"outcome": "approved"}),
        &[],
    );
    let v = post(
        &s,
        "j.doe",
        &format!("/v1/deployments/{d}/progressions"),
        &json!({"target_stage": "regional"}),
        &[],
    )
    .json();
    assert_eq!(v["decision"]["outcome"], "hold", "{v:#}");
    assert!(
        codes(&v).contains(&"progression.separation_of_duties".to_string()),
        "{v:#}"
    );
    let h = history(&s, &d);
    assert_eq!(h.last().unwrap()["actor"], "j.doe");
    // A release with an acceptance smuggled into its evidence is refused.
    let mut rb = support::records::release_body("9.9.9");
    rb["deficiencies"][0]["acceptance"] =
        json!({"accepted_by": "nobody", "accepted_at": "2026-01-01T00:00:00Z", "rationale": "x"});
    let r = post(&s, "ops", "/v1/systems/credit-scoring/releases", &rb, &[]);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["path"], "/deficiencies/0/acceptance");
}

fn stateless_decisions_are_logged_and_readable(b: Backend) {
    let Some(w) = World::new(b, "log_requests = true\n") else {
        return;
    };
    let s = w.start();
    let v = s
        .post_json(
            "/v1/decisions/gate",
            Some(&support::records::token("gw")),
            &support::high_risk_gate(),
        )
        .json();
    let id = v["decision_id"].as_str().unwrap();
    let e = get(&s, "audit", &format!("/v1/decisions/{id}")).json();
    assert_eq!(e["decision_id"], id);
    assert_eq!(e["outcome"], "allow");
    assert_eq!(e["actor"], "gw");
    assert_eq!(e["bundle_digest"], v["policy"]["digest"]);
    assert!(e["request_digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(e["request"].as_str().unwrap().contains("credit-scoring"));
    assert_eq!(
        get(&s, "audit", "/v1/decisions/01NOTADECISION00000000000").status,
        404
    );
}

fn an_edited_log_row_is_named_by_audit_verify(b: Backend) {
    let Some(w) = World::new(b, NO_RECEIPTS) else {
        return;
    };
    let s = w.start();
    let token = support::records::token("gw");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            s.post_json(
                "/v1/decisions/gate",
                Some(&token),
                &support::high_risk_gate(),
            )
            .json()["decision_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 entries"), "{out}");
    assert_eq!(
        w.sql(&format!(
            "UPDATE decision_log SET outcome = 'deny' WHERE decision_id = '{}'",
            ids[2]
        )),
        1
    );
    let (code, out) = w.audit_verify();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("BROKEN at entry 3 (decision {})", ids[2])),
        "{out}"
    );
    assert!(out.contains("altered"), "{out}");
}

fn a_crash_loses_no_acknowledged_write_and_leaves_every_state_explained(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let deployments: Vec<String> = (0..4).map(|_| deploy(&s, &release)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = s.url("");
    let mut clients = Vec::new();
    for i in 0..8 {
        let (stop, url, d) = (stop.clone(), url.clone(), deployments[i % 4].clone());
        let acknowledged = acknowledged.clone();
        clients.push(std::thread::spawn(move || {
            // Acknowledged decision ids.
            let mut acked = Vec::new();
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (path, who, body) = if i % 2 == 0 {
                    // Drive some deployments into rollback as well.
                    let rate = if n.is_multiple_of(25) { 0.09 } else { 0.01 };
                    (format!("{url}/v1/deployments/{d}/observations"), "ops",
                     json!({"observations": [{"metric": "error_rate", "value": rate, "samples": 5000}]}))
                } else {
                    (format!("{url}/v1/decisions/gate"), "gw", support::high_risk_gate())
                };
                let r = agent
                    .post(&path)
                    .set("Authorization", &format!("Bearer {}", support::records::token(who)))
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string());
                match r {
                    Ok(resp) => {
                        let v: Value = serde_json::from_str(&resp.into_string().unwrap_or_default()).unwrap_or(Value::Null);
                        let id = v["decision"]["decision_id"].as_str().or(v["decision_id"].as_str()).map(str::to_string);
                        if let Some(id) = id {
                            acked.push(id);
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            acked
        }));
    }
    // The crash comes once more than 50 writes were acknowledged, with
    // more under way: counted, not timed.
    support::wait_until("50 acknowledged writes", support::HANG, || {
        acknowledged.load(Ordering::Relaxed) > 50
    });
    s.kill();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        acked.len() > 50,
        "only {} writes were acknowledged before the crash",
        acked.len()
    );

    let s = w.start();
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
    for id in &acked {
        let r = get(&s, "audit", &format!("/v1/decisions/{id}"));
        assert_eq!(
            r.status, 200,
            "acknowledged decision {id} is missing after the crash"
        );
    }
    for d in &deployments {
        let v = get(&s, "audit", &format!("/v1/deployments/{d}")).json();
        let h = v["history"].as_array().unwrap();
        let last = h.last().unwrap();
        assert_eq!(
            v["status"], last["status"],
            "{d}: state not explained by its history"
        );
        assert_eq!(v["stage"], last["stage"], "{d}");
        let changes = h
            .iter()
            .filter(|e| {
                ["promoted", "rolled_back", "suspended"].contains(&e["event"].as_str().unwrap())
            })
            .count();
        assert_eq!(
            v["version"].as_i64().unwrap(),
            1 + changes as i64,
            "{d}: version vs history"
        );
        for e in h.iter().filter(|e| !e["decision_id"].is_null()) {
            let id = e["decision_id"].as_str().unwrap();
            assert_eq!(
                get(&s, "audit", &format!("/v1/decisions/{id}")).status,
                200,
                "{d}: event cites missing decision {id}"
            );
        }
    }
    eprintln!(
        "crash test ({b:?}): {} acknowledged writes, all present after restart",
        acked.len()
    );
}

fn every_kind_of_record_row_edited_by_hand_is_named_by_audit_verify(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let d = deploy(&s, &release);
    observe(&s, &d, 0.01, 5000);
    let issue = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/issues"),
        &json!({"id": "INC-1", "severity": "low", "status": "open"}),
        &[],
    );
    assert_eq!(issue.status, 201, "{}", issue.body);
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("records verified"), "{out}");

    // One edit per kind of record, each named in turn by the next verify.
    let edits = [
        (
            "authorisations",
            "UPDATE authorisations SET authorised_by = 'x'",
        ),
        (
            "reviews",
            "UPDATE reviews SET outcome = 'approved_with_conditions'",
        ),
        (
            "acceptances",
            "UPDATE acceptances SET accepted_by = 'nobody'",
        ),
        ("systems", "UPDATE systems SET risk_tier = 'low'"),
        ("releases", "UPDATE releases SET version = '9.9.9'"),
        (
            "deployments",
            "UPDATE deployments SET traffic_percent = 100",
        ),
        (
            "deployment_events",
            "UPDATE deployment_events SET reason = 'all fine'",
        ),
        ("observations", "UPDATE observations SET value = 0"),
        (
            "material_issues",
            "UPDATE material_issues SET severity = 'critical'",
        ),
    ];
    for (table, sql) in edits {
        assert!(w.sql(sql) >= 1, "{sql}");
        let (code, out) = w.audit_verify();
        assert_eq!(code, 1, "{table}: {out}");
        assert!(
            out.contains(&format!("record TAMPERED: {table} ")) && out.contains("altered"),
            "{table} not named:\n{out}"
        );
    }
    // A row slipped in behind the service's back, and one taken away.
    w.sql(&format!(
        "INSERT INTO reviews (id, release_id, deployment_id, reviewer, completed_at, outcome, doc) \
         VALUES ('FORGED', '{release}', NULL, 'a.lee', 0, 'approved', '{{}}')"
    ));
    w.sql("DELETE FROM material_issues");
    let (code, out) = w.audit_verify();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("record TAMPERED: reviews FORGED: the row has no entry in the chain"),
        "{out}"
    );
    assert!(
        out.contains("record TAMPERED: material_issues ") && out.contains("it was deleted"),
        "{out}"
    );
}

fn a_history_rewritten_with_recomputed_hashes_fails_the_signed_checkpoint(b: Backend) {
    let Some(w) = World::new(b, NO_RECEIPTS) else {
        return;
    };
    let s = w.start();
    let token = support::records::token("gw");
    for _ in 0..4 {
        let r = s.post_json(
            "/v1/decisions/gate",
            Some(&token),
            &support::high_risk_gate(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let note = get(&s, "audit", "/v1/log/checkpoint");
    assert_eq!(note.status, 200, "{}", note.body);
    assert!(
        note.body.starts_with("stagegate/decision-log\n4\n"),
        "{}",
        note.body
    );
    let checkpoint = w.d.path("checkpoint.txt");
    std::fs::write(&checkpoint, &note.body).unwrap();
    let key = w.d.path("data/log/checkpoint.pub");
    let args = [
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let (code, out) = w.audit_verify_with(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checkpoint verified"), "{out}");
    // Later decisions extend the checkpointed log; that is fine.
    s.post_json(
        "/v1/decisions/gate",
        Some(&token),
        &support::high_risk_gate(),
    );
    assert_eq!(w.audit_verify_with(&args).0, 0);

    // Someone with the database rewrites decision 2 and recomputes every
    // hash after it: the chain alone is consistent again...
    w.rewrite_history(2, "deny");
    let (code, out) = w.audit_verify();
    assert!(out.contains("decision log verified"), "{out}");
    // ...but not the Merkle tree, nor against what the service signed
    // (its last checkpoint, kept outside the database, by default).
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tree BROKEN at entry 2"), "{out}");
    assert!(out.contains("history was rewritten"), "{out}");
    let (code, out) = w.audit_verify_with(&args);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "checkpoint NOT EXTENDED: the log does not extend the checkpoint of 4 entries"
        ) && out.contains("history was rewritten"),
        "{out}"
    );
    // A checkpoint edited to match, or checked with another key, is refused.
    let forged = note.body.replacen("\n4\n", "\n3\n", 1);
    std::fs::write(&checkpoint, forged).unwrap();
    let (code, out) = w.audit_verify_with(&args);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not verify"), "{out}");
}

fn concurrent_identical_requests_with_one_idempotency_key_get_one_answer(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let body = json!({"release_id": release, "plan": support::records::plan()});
    for round in 0..4 {
        let key = format!("race-{round}");
        let replies: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (s, body, key) = (&s, &body, &key);
                    scope.spawn(move || {
                        post(
                            s,
                            "ops",
                            "/v1/deployments",
                            body,
                            &[("Idempotency-Key", key)],
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &replies {
            assert_eq!(r.status, 201, "round {round}: {}", r.body);
        }
        let ids: std::collections::BTreeSet<String> = replies
            .iter()
            .map(|r| r.json()["deployment"]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "round {round}: one key acted more than once: {ids:?}"
        );
    }
}

fn a_future_dated_observation_is_refused_with_its_path_and_nothing_is_stored(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let d = deploy(&s, &release);
    let r = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/observations"),
        &json!({"observations": [
            {"metric": "error_rate", "value": 0.01, "samples": 5000},
            {"metric": "error_rate", "value": 0, "samples": 1000000, "window_end": "9999-12-31T00:00:00Z"}
        ]}),
        &[],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/observations/1/window_end");
    assert!(r.body.contains("in the future"), "{}", r.body);
    let rec = get(&s, "audit", &format!("/v1/deployments/{d}/record")).json();
    assert_eq!(rec["observations_recorded"], 0, "{rec:#}");
    // Within the allowed clock skew an observation is taken.
    let soon =
        stagegate::decision::Timestamp(stagegate::decision::Timestamp::now().millis() + 60_000);
    let r = observe_at(&s, &d, 0.01, &soon.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    // And a real breach after it still rolls the deployment back.
    let r = observe(&s, &d, 0.9, 5000);
    assert_eq!(r.json()["decision"]["outcome"], "rollback", "{}", r.body);
}

fn observe_at(
    s: &support::server::Server,
    d: &str,
    rate: f64,
    window_end: &str,
) -> support::server::Reply {
    post(
        s,
        "ops",
        &format!("/v1/deployments/{d}/observations"),
        &json!({"observations": [{"metric": "error_rate", "value": rate, "samples": 5000, "window_end": window_end}]}),
        &[],
    )
}

fn a_deployment_record_proves_its_own_entries_without_rehashing_the_log(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let token = support::records::token("gw");
    let other = s
        .post_json(
            "/v1/decisions/gate",
            Some(&token),
            &support::high_risk_gate(),
        )
        .json()["decision_id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    observe(&s, &d, 0.01, 5000);
    // An unrelated entry is altered: the whole log no longer verifies...
    w.sql(&format!(
        "UPDATE decision_log SET outcome = 'deny' WHERE decision_id = '{other}'"
    ));
    assert_eq!(w.audit_verify().0, 1);
    // ...but the deployment's record is proved from its own entries and
    // their neighbours, at a cost that does not grow with the log.
    let rec = get(&s, "audit", &format!("/v1/deployments/{d}/record")).json();
    assert_eq!(rec["chain"]["log_verified"], true, "{:#}", rec["chain"]);
    let proof = rec["chain"]["proof"].as_array().unwrap();
    assert!(proof.len() >= 3, "{proof:#?}");
    assert!(proof.iter().all(|p| p["matches"] == true));
    // Altering one of its own entries shows in its proof.
    let first = proof[0]["decision_id"].as_str().unwrap().to_string();
    w.sql(&format!(
        "UPDATE decision_log SET actor = 'someone else' WHERE decision_id = '{first}'"
    ));
    let rec = get(&s, "audit", &format!("/v1/deployments/{d}/record")).json();
    assert_eq!(rec["chain"]["log_verified"], false, "{:#}", rec["chain"]);
}

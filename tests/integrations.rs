//! Contract tests of the rollout controller adapters: each tool's real
//! requests, replayed against a running server holding the scenario's
//! records — a pilot at 5 %, a promotion to regional authorised, then a
//! breach and an automatic rollback — asserting every Flagger hook's
//! status and body and every Argo Rollouts `result` at each point.
//!
//! Where the requests come from:
//! - Argo Rollouts, `metricproviders/webmetric/webmetric.go`: a GET (the
//!   default method) to the template's URL with the template's headers
//!   (`Authorization: Bearer …`) and no body; any non-2xx is an Error
//!   measurement, so a judgement must be a 200; the template's
//!   `jsonPath: "{$.result}"` picks the value `utils/evaluate/evaluate.go`
//!   compares with `successCondition`/`failureCondition`.
//! - Flagger, `pkg/controller/webhook.go` (`CallWebhook`,
//!   `CallEventWebhook`) and `pkg/apis/flagger/v1beta1/canary.go`
//!   (`CanaryWebhookPayload`): a POST with `Content-Type:
//!   application/json` and `{name, namespace, phase, checksum, metadata}`;
//!   the phase each hook is called with is the one
//!   `pkg/controller/scheduler_hooks.go` passes; the event hook's metadata
//!   carries `eventMessage`, `eventType` and `timestamp`; a status above
//!   202 fails the hook, and `rollback` passing means roll back.

use crate::support;

use serde_json::{Value, json};
use support::records::{Backend, World, get, observe, plan, post, registered_release, token};
use support::server::{Reply, Server};

support::on_both_backends!(
    controllers_follow_the_scenario_from_pilot_to_automatic_rollback,
    bad_controller_input_is_a_clear_4xx_never_a_5xx,
);

const NAMESPACE: &str = "risk";
const NAME: &str = "credit-scoring";
/// A checksum as Flagger computes it (`canaryChecksum`: a short hash).
const CHECKSUM: &str = "7c9d5f8b64";

/// The Argo Rollouts web metric request: GET, the template's
/// Authorization header, no body.
fn argo(s: &Server, query: &str) -> Reply {
    s.get(
        &format!("/v1/integrations/argo-rollouts/analysis?{query}"),
        Some(&token("gw")),
    )
}

/// The value Argo's `jsonPath: "{$.result}"` extracts, after checking the
/// exchange is a 200 with a JSON body, as Argo requires.
fn argo_result(s: &Server, query: &str) -> (String, Value) {
    let r = argo(s, query);
    assert_eq!(r.status, 200, "argo {query}: {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    (v["result"].as_str().unwrap().to_string(), v)
}

/// The phase Flagger passes for each hook (scheduler_hooks.go,
/// scheduler.go's runAnalysis, events.go).
fn phase_of(hook: &str) -> &'static str {
    match hook {
        "confirm-rollout" => "Initialized",
        "post-rollout" => "Succeeded",
        _ => "Progressing",
    }
}

/// Flagger's `CanaryWebhookPayload` for `hook`, with the webhook's own
/// metadata (`extra`).
fn flagger_payload(hook: &str, extra: Value) -> Value {
    let mut metadata = serde_json::Map::new();
    if hook == "event" {
        metadata.insert(
            "eventMessage".into(),
            json!("Advance credit-scoring.risk canary weight 10"),
        );
        metadata.insert("eventType".into(), json!("Normal"));
        metadata.insert("timestamp".into(), json!("1795923000000"));
    }
    if let Value::Object(m) = extra {
        for (k, v) in m {
            metadata.entry(k).or_insert(v);
        }
    }
    let mut p = json!({
        "name": NAME,
        "namespace": NAMESPACE,
        "phase": phase_of(hook),
        "checksum": CHECKSUM,
    });
    if !metadata.is_empty() {
        p["metadata"] = Value::Object(metadata);
    }
    p
}

fn flagger(s: &Server, hook: &str) -> Reply {
    s.post_json(
        &format!("/v1/integrations/flagger/{hook}"),
        Some(&token("gw")),
        &flagger_payload(hook, json!({})),
    )
}

/// Every hook's status now, with the body checked to say why.
fn hooks(s: &Server) -> Vec<(&'static str, u16)> {
    [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "rollback",
    ]
    .into_iter()
    .map(|h| {
        let r = flagger(s, h);
        let v = r.json();
        assert_eq!(v["hook"], h, "{}", r.body);
        assert!(
            !v["message"].as_str().unwrap_or_default().is_empty(),
            "{h}: the body says why: {}",
            r.body
        );
        assert!(!r.body.contains('\n'), "one line: {}", r.body);
        (h, r.status)
    })
    .collect()
}

fn version(s: &Server, id: &str) -> Value {
    get(s, "audit", &format!("/v1/deployments/{id}")).json()["version"].clone()
}

fn controllers_follow_the_scenario_from_pilot_to_automatic_rollback(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let by_ref = format!("ref={NAMESPACE}/{NAME}");

    // Before the gate allowed anything: the confirmations refuse, so
    // Flagger waits; nothing else has a deployment to talk about.
    for h in ["confirm-rollout", "pre-rollout"] {
        let r = flagger(&s, h);
        assert_eq!(r.status, 403, "{h}: {}", r.body);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("no deployment")
        );
    }
    assert_eq!(argo(&s, &by_ref).status, 404);

    // Pilot at 5 %.
    let r = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(),
                "refs": {"kubernetes": format!("{NAMESPACE}/{NAME}")}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.json()["deployment"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        observe(&s, &d, 0.01, 20_000).json()["decision"]["outcome"],
        "healthy"
    );
    let v0 = version(&s, &d);

    let (result, v) = argo_result(&s, &format!("{by_ref}&weight=5"));
    assert_eq!(result, "successful", "{v:#}");
    assert_eq!(
        (v["stage"].clone(), v["traffic_percent"].clone()),
        (json!("pilot"), json!(5.0))
    );
    assert_eq!(v["status"], "active");
    assert_eq!(v["deployment_id"], d.as_str());
    // The next setWeight is beyond the authorised stage: Argo pauses.
    let (result, v) = argo_result(&s, &format!("{by_ref}&weight=25"));
    assert_eq!(result, "inconclusive", "{v:#}");
    assert!(
        v["reason"].as_str().unwrap().contains("'regional'"),
        "{v:#}"
    );
    let (result, _) = argo_result(&s, &format!("deployment={d}&weight=100"));
    assert_eq!(result, "inconclusive");
    let (result, v) = argo_result(&s, &by_ref);
    assert_eq!(result, "successful", "{v:#}");
    // The answer is a logged read-only decision.
    let entry = get(
        &s,
        "audit",
        &format!("/v1/decisions/{}", v["decision_id"].as_str().unwrap()),
    );
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert_eq!(entry.json()["read_only"], true);

    assert_eq!(
        hooks(&s),
        [
            ("confirm-rollout", 200),
            ("pre-rollout", 200),
            ("rollout", 200),
            ("confirm-traffic-increase", 200),
            ("confirm-promotion", 403),
            ("rollback", 409),
        ]
    );
    let r = flagger(&s, "confirm-promotion");
    assert!(
        r.json()["message"].as_str().unwrap().contains("'general'"),
        "{}",
        r.body
    );

    // post-rollout and event are recorded in the history, nothing moves.
    for h in ["post-rollout", "event"] {
        let r = flagger(&s, h);
        assert_eq!(r.status, 200, "{h}: {}", r.body);
    }
    let view = get(&s, "audit", &format!("/v1/deployments/{d}")).json();
    let reported: Vec<&Value> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "reported")
        .collect();
    assert_eq!(reported.len(), 2, "{view:#}");
    assert_eq!(reported[0]["detail"]["hook"], "post-rollout");
    assert_eq!(reported[0]["detail"]["phase"], "Succeeded");
    assert_eq!(reported[0]["detail"]["checksum"], CHECKSUM);
    assert_eq!(reported[1]["detail"]["hook"], "event");
    assert_eq!(
        reported[1]["reason"],
        "Advance credit-scoring.risk canary weight 10"
    );
    assert_eq!(reported[1]["actor"], "gw");
    // None of the adapters' calls changed the deployment.
    assert_eq!(version(&s, &d), v0);

    // Promotion to regional, authorised.
    let r = post(
        &s,
        "a.lee",
        &format!("/v1/deployments/{d}/reviews"),
        &json!({"outcome": "approved", "target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        &s,
        "j.doe",
        &format!("/v1/deployments/{d}/progressions"),
        &json!({"target_stage": "regional", "authorisation": {"scope": ["regional"]}}),
        &[],
    );
    assert_eq!(r.json()["decision"]["outcome"], "promote", "{}", r.body);
    let (result, v) = argo_result(&s, &format!("{by_ref}&weight=25"));
    assert_eq!(result, "successful", "{v:#}");
    assert_eq!(v["stage"], "regional");
    let (result, _) = argo_result(&s, &format!("{by_ref}&weight=50"));
    assert_eq!(result, "inconclusive");
    assert_eq!(
        hooks(&s),
        [
            ("confirm-rollout", 200),
            ("pre-rollout", 200),
            ("rollout", 200),
            ("confirm-traffic-increase", 200),
            ("confirm-promotion", 403),
            ("rollback", 409),
        ]
    );

    // An error rate above regional's criterion: an alert, not a breach.
    assert_eq!(
        observe(&s, &d, 0.03, 20_000).json()["decision"]["outcome"],
        "alert"
    );
    let (result, v) = argo_result(&s, &by_ref);
    assert_eq!(result, "inconclusive", "{v:#}");
    assert!(!v["findings"].as_array().unwrap().is_empty(), "{v:#}");
    let (result, _) = argo_result(&s, &format!("{by_ref}&weight=25"));
    assert_eq!(result, "successful");
    assert_eq!(flagger(&s, "rollout").status, 200);
    assert_eq!(flagger(&s, "rollback").status, 409);

    // The breach: the monitoring policy rolls back by itself.
    let v = observe(&s, &d, 0.08, 3000).json();
    assert_eq!(v["deployment"]["status"], "rolled_back", "{v:#}");
    for q in [
        by_ref.clone(),
        format!("{by_ref}&weight=5"),
        format!("deployment={d}&weight=25"),
    ] {
        let (result, v) = argo_result(&s, &q);
        assert_eq!(result, "failed", "{q}: {v:#}");
        assert_eq!(v["status"], "rolled_back");
    }
    assert_eq!(
        hooks(&s),
        [
            ("confirm-rollout", 403),
            ("pre-rollout", 403),
            ("rollout", 403),
            ("confirm-traffic-increase", 403),
            ("confirm-promotion", 403),
            ("rollback", 200),
        ]
    );
    let r = flagger(&s, "rollback");
    let body = r.json();
    assert!(
        body["message"].as_str().unwrap().starts_with("roll back"),
        "{}",
        r.body
    );
    assert_eq!(body["status"], "rolled_back");

    // Everything the adapters logged keeps the chain intact.
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
}

fn bad_controller_input_is_a_clear_4xx_never_a_5xx(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let r = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(),
                "refs": {"kubernetes": format!("{NAMESPACE}/{NAME}")}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let gw = token("gw");
    let check = |r: Reply, status: u16, path: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        let v = r.json();
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
        if !path.is_empty() {
            assert_eq!(v["error"]["path"], path, "{v}");
        }
    };

    // Flagger.
    let hook = |name: &str, body: &[u8]| {
        s.send(
            "POST",
            &format!("/v1/integrations/flagger/{name}"),
            Some(&gw),
            Some("application/json"),
            Some(body),
        )
    };
    let p = |v: Value| serde_json::to_vec(&v).unwrap();
    check(
        hook("pre_rollout", &p(flagger_payload("rollout", json!({})))),
        404,
        "hook",
    );
    check(
        hook("rollout", &p(json!({"namespace": NAMESPACE}))),
        422,
        "/name",
    );
    check(
        hook("rollout", &p(json!({"name": NAME}))),
        422,
        "/namespace",
    );
    check(
        hook(
            "rollout",
            &p(json!({"name": NAME, "namespace": "Not A Namespace"})),
        ),
        422,
        "/namespace",
    );
    check(hook("rollout", b"{\"name\": "), 400, "");
    check(
        hook("rollout", &p(json!({"name": 7, "namespace": NAMESPACE}))),
        400,
        "/name",
    );
    check(
        hook(
            "rollout",
            &p(flagger_payload("rollout", json!({"deployment": "nope"}))),
        ),
        404,
        "",
    );
    let unknown =
        json!({"name": "other", "namespace": NAMESPACE, "phase": "Progressing", "checksum": ""});
    for h in ["rollout", "confirm-promotion", "rollback", "event"] {
        check(hook(h, &p(unknown.clone())), 404, "");
    }
    // Authorisation: a token in the header, or (Flagger's webhook spec has
    // no headers) in the payload's metadata; the role must fit.
    let r = s.post_json(
        "/v1/integrations/flagger/rollout",
        None,
        &flagger_payload("rollout", json!({})),
    );
    check(r, 401, "");
    let r = s.post_json(
        "/v1/integrations/flagger/rollout",
        None,
        &flagger_payload("rollout", json!({"token": gw})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.post_json(
        "/v1/integrations/flagger/rollout",
        Some(&token("a.lee")),
        &flagger_payload("rollout", json!({})),
    );
    check(r, 403, "");

    // Argo Rollouts.
    let a = |q: &str| {
        s.get(
            &format!("/v1/integrations/argo-rollouts/analysis{q}"),
            Some(&gw),
        )
    };
    check(a(""), 422, "deployment");
    check(
        a("?deployment=x&ref=risk/credit-scoring"),
        422,
        "deployment",
    );
    check(a("?ref=credit-scoring"), 422, "ref");
    check(a("?ref=risk/nothing-here"), 404, "");
    check(a("?deployment=nope"), 404, "");
    for weight in ["abc", "-1", "101", "NaN"] {
        check(
            a(&format!("?ref=risk/credit-scoring&weight={weight}")),
            422,
            "weight",
        );
    }
    check(
        s.get(
            "/v1/integrations/argo-rollouts/analysis?ref=risk/credit-scoring",
            None,
        ),
        401,
        "",
    );
    check(
        s.get(
            "/v1/integrations/argo-rollouts/analysis?ref=risk/credit-scoring",
            Some(&token("pub")),
        ),
        403,
        "",
    );
    assert!(!s.logs().contains("panicked"), "{}", s.logs());
}

/// The value of `key: value` on a trimmed YAML line, unquoted.
fn yaml_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim().trim_start_matches("- ").strip_prefix(key)?;
    let v = rest.strip_prefix(':')?.trim();
    Some(v.trim_matches('"'))
}

fn example(rel: &str) -> String {
    std::fs::read_to_string(support::root().join("examples").join(rel))
        .unwrap_or_else(|e| panic!("examples/{rel}: {e}"))
}

/// Argo's phase for a measured value, as `utils/evaluate/evaluate.go`
/// decides it from the template's two conditions (each of the form
/// `result == "X"` in the shipped template).
fn argo_phase(success: &str, failure: &str, result: &str) -> &'static str {
    let holds = |cond: &str| {
        let expected = cond
            .strip_prefix("result == ")
            .unwrap_or_else(|| panic!("unexpected condition {cond}"))
            .trim_matches('"');
        expected == result
    };
    match (holds(success), holds(failure)) {
        (_, true) => "Failed",
        (true, false) => "Successful",
        (false, false) => "Inconclusive",
    }
}

/// The shipped manifests, read as the controllers read them: every URL,
/// header, jsonPath and condition of the Argo templates and every hook of
/// the Flagger Canary is exercised against a running server.
#[test]
fn the_shipped_examples_drive_stagegate_as_the_controllers_would() {
    let w = World::new(Backend::Sqlite, "").unwrap();
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let r = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(),
                "refs": {"kubernetes": format!("{NAMESPACE}/{NAME}")}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.json()["deployment"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        observe(&s, &d, 0.01, 20_000).json()["decision"]["outcome"],
        "healthy"
    );
    let service = "http://stagegate.stagegate.svc:8080";
    let base = s.url("");

    // Argo Rollouts: the two templates and the Rollout's step weights.
    let templates = example("argo-rollouts/analysis-templates.yaml");
    let rollout = example("argo-rollouts/rollout.yaml");
    assert!(rollout.contains("fieldPath: metadata.annotations['stagegate.dev/deployment']"));
    assert!(rollout.contains("stagegate.dev/deployment: "));
    let weights: Vec<String> = rollout
        .lines()
        .zip(rollout.lines().skip(1))
        .filter(|(a, _)| yaml_value(a, "name") == Some("weight"))
        .filter_map(|(_, b)| yaml_value(b, "value").map(str::to_string))
        .collect();
    assert_eq!(weights, ["5", "25", "100"]);
    let field = |key: &str| -> Vec<String> {
        templates
            .lines()
            .filter_map(|l| yaml_value(l, key).map(str::to_string))
            .collect()
    };
    let (urls, paths) = (field("url"), field("jsonPath"));
    let (success, failure) = (field("successCondition"), field("failureCondition"));
    assert_eq!(urls.len(), 2);
    assert_eq!(paths, ["{$.result}", "{$.result}"]);
    assert!(
        field("value")
            .iter()
            .all(|v| v == "Bearer {{args.stagegate-token}}")
    );
    let measure = |template: usize, weight: &str| -> &'static str {
        let url = urls[template]
            .replace(service, base.trim_end_matches('/'))
            .replace("{{args.deployment}}", &d)
            .replace("{{args.weight}}", weight);
        let r = support::server::send(&url, "GET", Some(&token("gw")), None, None);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let result = r.json()["result"].as_str().unwrap().to_string();
        argo_phase(&success[template], &failure[template], &result)
    };
    let steps: Vec<&str> = weights.iter().map(|w| measure(0, w)).collect();
    assert_eq!(steps, ["Successful", "Inconclusive", "Inconclusive"]);
    assert_eq!(measure(1, ""), "Successful");

    // Flagger: every hook type of canary.yaml, with its metadata.
    let canary = example("flagger/canary.yaml");
    let mut hooks: Vec<(String, String)> = Vec::new();
    let mut kind = String::new();
    for line in canary.lines() {
        if let Some(t) = yaml_value(line, "type") {
            kind = t.to_string();
        }
        if let Some(u) = yaml_value(line, "url") {
            hooks.push((kind.clone(), u.replace(service, base.trim_end_matches('/'))));
        }
    }
    let mut types: Vec<&str> = hooks.iter().map(|(t, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "confirm-promotion",
            "confirm-rollout",
            "confirm-traffic-increase",
            "event",
            "post-rollout",
            "pre-rollout",
            "rollback",
            "rollout"
        ]
    );
    assert_eq!(
        canary
            .matches("token: \"REPLACE-WITH-A-GATEWAY-TOKEN\"")
            .count(),
        8
    );
    let mut statuses: Vec<(String, u16)> = hooks
        .iter()
        .map(|(t, url)| {
            // The token travels in the metadata, as the example wires it.
            let payload = flagger_payload(t, json!({"token": token("gw")}));
            let bytes = serde_json::to_vec(&payload).unwrap();
            let r =
                support::server::send(url, "POST", None, Some("application/json"), Some(&bytes));
            (t.clone(), r.status)
        })
        .collect();
    statuses.sort();
    let expected: Vec<(String, u16)> = [
        ("confirm-promotion", 403),
        ("confirm-rollout", 200),
        ("confirm-traffic-increase", 200),
        ("event", 200),
        ("post-rollout", 200),
        ("pre-rollout", 200),
        ("rollback", 409),
        ("rollout", 200),
    ]
    .into_iter()
    .map(|(h, c)| (h.to_string(), c))
    .collect();
    assert_eq!(statuses, expected);
}

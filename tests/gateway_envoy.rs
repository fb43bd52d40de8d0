//! The Envoy example (examples/gateways/envoy.yaml) read as Envoy would
//! read it (PyYAML turns it into JSON), and the exposure check answering
//! by route as that example asks it: a refused caller is routed to the
//! stable release instead of being refused, the subject is the JWT's claim
//! and never a header the client sent, and nothing of stagegate's answer
//! reaches the client.

use crate::support;

use serde_json::{Value, json};
use support::records::{Backend, World, deployed_with_ref, token};
use support::server::Request;

const REF: &str = "serving/credit-scoring";

/// The example as JSON; `None` (skipped) without PyYAML.
fn example() -> Option<Value> {
    if !support::require_tool("pyyaml") {
        return None;
    }
    let path = support::root().join("examples/gateways/envoy.yaml");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

#[test]
fn the_envoy_example_routes_refused_callers_to_stable_and_takes_the_subject_from_the_jwt_only() {
    let Some(config) = example() else { return };
    let hcm = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = &hcm["http_filters"];
    let names: Vec<&str> = filters
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let position = |n: &str| names.iter().position(|x| *x == n).unwrap_or(usize::MAX);
    // The client's own x-stagegate-* headers are removed before the JWT
    // filter writes the subject and before ext_authz asks.
    let mutation =
        &named(filters, "envoy.filters.http.header_mutation")["typed_config"]["mutations"];
    let removed = |side: &str| -> Vec<String> {
        mutation[side]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["remove"].as_str().map(str::to_string))
            .collect()
    };
    for h in [
        "x-stagegate-subject",
        "x-stagegate-route",
        "x-stagegate-decision",
    ] {
        assert!(
            removed("request_mutations").contains(&h.to_string()),
            "{h} from the client"
        );
    }
    for h in ["x-stagegate-decision", "x-stagegate-route"] {
        assert!(
            removed("response_mutations").contains(&h.to_string()),
            "{h} to the client"
        );
    }
    assert!(
        position("envoy.filters.http.header_mutation") < position("envoy.filters.http.jwt_authn")
    );
    assert!(position("envoy.filters.http.jwt_authn") < position("envoy.filters.http.ext_authz"));
    let jwt = &named(filters, "envoy.filters.http.jwt_authn")["typed_config"];
    assert_eq!(
        jwt["providers"]["users"]["claim_to_headers"],
        json!([{"header_name": "x-stagegate-subject", "claim_name": "sub"}])
    );
    // ext_authz asks for an answer by route and lets it choose the route.
    let authz = &named(filters, "envoy.filters.http.ext_authz")["typed_config"];
    assert_eq!(authz["clear_route_cache"], true);
    let service = &authz["http_service"];
    let added: Vec<(String, String)> = service["authorization_request"]["headers_to_add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().into(),
                h["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        added.contains(&("x-stagegate-answer".into(), "route".into())),
        "{added:?}"
    );
    assert_eq!(
        service["authorization_request"]["allowed_headers"]["patterns"],
        json!([{"exact": "x-stagegate-subject"}])
    );
    let upstream = &service["authorization_response"]["allowed_upstream_headers"]["patterns"];
    assert!(
        upstream
            .as_array()
            .unwrap()
            .contains(&json!({"exact": "x-stagegate-route"}))
    );
    assert!(
        !upstream
            .as_array()
            .unwrap()
            .contains(&json!({"exact": "x-stagegate-decision"}))
    );
    assert!(
        service["authorization_response"]["allowed_client_headers"].is_null(),
        "nothing of stagegate's answer is passed to the client"
    );
    // The new release only on `x-stagegate-route: new`; everyone else (and
    // everyone when stagegate fails: no header) on the stable release.
    let routes = &hcm["route_config"]["virtual_hosts"][0]["routes"];
    let routes = routes.as_array().unwrap();
    assert_eq!(routes[0]["route"]["cluster"], "model_new_release");
    assert_eq!(
        routes[0]["match"]["headers"],
        json!([{"name": "x-stagegate-route", "string_match": {"exact": "new"}}])
    );
    let last = routes.last().unwrap();
    assert!(last["match"]["headers"].is_null());
    assert_eq!(last["route"]["cluster"], "model_stable_release");
    let clusters: Vec<&str> = config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(clusters.contains(&"model_stable_release"), "{clusters:?}");
}

#[test]
fn answered_by_route_a_refused_caller_gets_200_and_the_stable_route() {
    let world = World::new(Backend::Sqlite, "").unwrap();
    let s = world.start();
    deployed_with_ref(&s, REF);
    let ask = |subject: &str, mode: Option<&str>| {
        let mut headers = vec![("X-Stagegate-Ref", REF), ("X-Stagegate-Subject", subject)];
        if let Some(m) = mode {
            headers.push(("X-Stagegate-Answer", m));
        }
        Request::get(&s.url("/v1/integrations/authz"))
            .bearer(Some(&token("gw")))
            .headers(&headers)
            .send()
    };
    support::wait_until("the route table to hold the ref", support::HANG, || {
        ask("someone", None).header("x-stagegate-stage").is_some()
    });
    let (mut inside, mut outside) = (None, None);
    for i in 0..2_000 {
        let name = format!("user-{i:05}");
        match ask(&name, None).status {
            200 => inside = inside.or(Some(name)),
            403 => outside = outside.or(Some(name)),
            other => panic!("status {other}"),
        }
        if inside.is_some() && outside.is_some() {
            break;
        }
    }
    let (inside, outside) = (inside.unwrap(), outside.unwrap());
    let r = ask(&outside, Some("route"));
    assert_eq!(r.status, 200, "refused by route is routed, not refused");
    assert_eq!(r.header("x-stagegate-route"), Some("stable"));
    let r = ask(&inside, Some("route"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-stagegate-route"), Some("new"));
    // By status (nginx), as before.
    assert_eq!(ask(&outside, None).status, 403);
    assert!(ask(&outside, None).header("x-stagegate-route").is_none());
    let r = ask(&outside, Some("redirect"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "X-Stagegate-Answer");
}

/// Envoy hands any refusal below 500 from its authorisation service to the
/// user as it is. So a gateway whose credential stagegate refuses (none, a
/// revoked one, one without the `gateway` role) or whose headers it cannot
/// read must get the stable route when it asks by route, never a 401 or a
/// 403 its users would see; and nothing of the deployment is said to it.
#[test]
fn answered_by_route_a_refused_gateway_credential_gets_200_and_the_stable_route() {
    let world = World::new(Backend::Sqlite, "").unwrap();
    let s = world.start();
    deployed_with_ref(&s, REF);
    let ask = |authorization: Option<&str>, subject: &str, by_route: bool| {
        let mut request = Request::get(&s.url("/v1/integrations/authz"))
            .headers(&[("X-Stagegate-Ref", REF), ("X-Stagegate-Subject", subject)]);
        if let Some(a) = authorization {
            request = request.headers(&[("Authorization", a)]);
        }
        if by_route {
            request = request.headers(&[("X-Stagegate-Answer", "route")]);
        }
        request.send()
    };
    let gateway = format!("Bearer {}", token("gw"));
    support::wait_until("the route table to hold the ref", support::HANG, || {
        ask(Some(&gateway), "someone", false)
            .header("x-stagegate-stage")
            .is_some()
    });
    let operator = format!("Bearer {}", token("ops"));
    let cases: [(&str, Option<&str>, &str, u16, &str); 4] = [
        ("no credential", None, "someone", 401, "unauthorized"),
        (
            "a refused token",
            Some("Bearer revoked-0123456789"),
            "someone",
            401,
            "unauthorized",
        ),
        (
            "not a bearer",
            Some("Basic Z3c6Z3c="),
            "someone",
            401,
            "unauthorized",
        ),
        (
            "a token without the gateway role",
            Some(&operator),
            "someone",
            403,
            "forbidden",
        ),
    ];
    for (case, authorization, subject, by_status, code) in cases {
        let r = ask(authorization, subject, false);
        assert_eq!(r.status, by_status, "{case}, by status: {}", r.body);
        let r = ask(authorization, subject, true);
        assert_eq!(r.status, 200, "{case}, by route: {}", r.body);
        assert_eq!(r.header("x-stagegate-route"), Some("stable"), "{case}");
        let why = r.header("x-stagegate-decision").unwrap_or_default();
        assert!(
            why.starts_with(&format!("refused ({code})")),
            "{case}: {why}"
        );
        for h in ["x-stagegate-stage", "x-stagegate-release"] {
            assert!(
                r.header(h).is_none(),
                "{case}: {h} told to a refused caller"
            );
        }
    }
    // A subject header that is not visible ASCII (a client library will
    // not send one, so this goes over a raw connection).
    let unreadable = |by_route: bool| {
        let answer = if by_route {
            "X-Stagegate-Answer: route\r\n"
        } else {
            ""
        };
        let head = format!(
            "GET /v1/integrations/authz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: {gateway}\r\nX-Stagegate-Ref: {REF}\r\n{answer}X-Stagegate-Subject: "
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(b"caf\xc3\xa9\r\n\r\n");
        support::server::raw(&s.addr, &request).to_ascii_lowercase()
    };
    let r = unreadable(false);
    assert!(r.starts_with("http/1.1 400"), "{r}");
    let r = unreadable(true);
    assert!(r.starts_with("http/1.1 200"), "{r}");
    assert!(r.contains("x-stagegate-route: stable\r\n"), "{r}");
    assert!(
        r.contains("x-stagegate-decision: refused (bad_header)"),
        "{r}"
    );
    assert!(!r.contains("x-stagegate-stage"), "{r}");
    // Each refusal by route is counted by its reason: what shows a gateway
    // misconfigured when its users are all quietly on stable.
    let metrics = s.get("/metrics", None).body;
    for (reason, n) in [("unauthorized", 3), ("forbidden", 1), ("bad_header", 1)] {
        let line = format!("stagegate_authz_refused_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "no '{line}' in\n{metrics}");
    }
}

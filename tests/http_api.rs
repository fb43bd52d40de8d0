//! The decision API over HTTP: answers, every kind of bad input, access
//! control, and what /metrics and /v1/bundles report.

use crate::support;

use serde_json::json;
use support::server::{Deployment, Server};
use support::{high_risk_gate, root};

const REF: &str =
    "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n";

fn deployment(extra: &str) -> Deployment {
    deployment_with("", extra)
}

fn deployment_with(top: &str, extra: &str) -> Deployment {
    let d = Deployment::with(top, &format!("{REF}{extra}"));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    d
}

#[test]
fn a_complete_high_risk_request_is_allowed_and_a_deny_says_why() {
    let d = deployment("");
    let s = d.start();
    let r = s.post_json("/v1/decisions/gate", None, &high_risk_gate());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["outcome"], "allow");
    assert_eq!(v["first_stage"], "pilot");
    assert_eq!(v["policy"]["version"], "1.0.0");

    let mut req = high_risk_gate();
    req.as_object_mut().unwrap().remove("authorisation");
    let v = s.post_json("/v1/decisions/gate", None, &req).json();
    assert_eq!(v["outcome"], "deny");
    assert_eq!(v["findings"][0]["code"], "authorisation.missing");
}

#[test]
fn curl_style_form_content_type_is_read_as_json() {
    let d = deployment("");
    let s = d.start();
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    let r = s.send(
        "POST",
        "/v1/decisions/gate",
        None,
        Some("application/x-www-form-urlencoded"),
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "allow");
}

#[test]
fn progression_and_monitoring_answer_with_their_own_fields() {
    let d = deployment("");
    let s = d.start();
    let plan = high_risk_gate()["plan"].clone();
    let progression = json!({
        "now": "2026-11-26T12:00:00Z",
        "system": {"id": "credit-scoring", "risk_tier": "high"},
        "plan": plan,
        "current_stage": "pilot", "target_stage": "regional",
        "stage_entered_at": "2026-11-22T12:00:00Z",
        "observations": [{"metric": "error_rate", "value": 0.011, "samples": 48211, "window_end": "2026-11-26T11:55:00Z"}],
        "review": {"reviewer": "a.lee", "completed_at": "2026-11-25T09:00:00Z", "outcome": "approved"},
        "authorisation": {"authorised_by": "j.doe", "role": "Head of AI Risk", "authorised_at": "2026-11-25T10:00:00Z", "scope": ["regional"]}
    });
    let v = s
        .post_json("/v1/decisions/progression", None, &progression)
        .json();
    assert_eq!(v["outcome"], "promote", "{v:#}");
    assert_eq!(v["next_stage"], "regional");
    assert_eq!(v["traffic_percent"], 25.0);

    let monitoring = json!({
        "now": "2026-11-26T12:00:00Z",
        "system": {"id": "credit-scoring", "risk_tier": "high"},
        "plan": plan, "current_stage": "pilot", "deployed_at": "2026-11-25T12:00:00Z",
        "observations": [{"metric": "error_rate", "value": 0.09, "samples": 1200, "window_end": "2026-11-26T11:58:00Z"}]
    });
    let v = s
        .post_json("/v1/decisions/monitoring", None, &monitoring)
        .json();
    assert_eq!(v["outcome"], "rollback", "{v:#}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "trigger.rollback")
    );
}

fn error_of(r: &support::server::Reply) -> (String, String) {
    let v = r.json();
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        format!(
            "{} {}",
            v["error"]["path"].as_str().unwrap_or_default(),
            v["error"]["message"].as_str().unwrap_or_default()
        ),
    )
}

#[test]
fn bad_input_gets_the_right_4xx_with_a_json_error_and_the_server_keeps_serving() {
    let d = deployment("");
    let s = d.start();
    let gate = "/v1/decisions/gate";

    let r = s.send(
        "POST",
        gate,
        None,
        Some("application/json"),
        Some(b"{not json"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(error_of(&r).0, "request.malformed");

    let r = s.send("POST", gate, None, Some("text/plain"), Some(b"{}"));
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(error_of(&r).1.contains("application/json"));

    let mut wrong = high_risk_gate();
    wrong["plan"]["stages"][1]["traffic_percent"] = json!("25");
    let r = s.post_json(gate, None, &wrong);
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["path"], "/plan/stages/1/traffic_percent");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a number")
    );

    let mut missing = high_risk_gate();
    missing.as_object_mut().unwrap().remove("now");
    let r = s.post_json(gate, None, &missing);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["path"], "/now");

    let mut invalid = high_risk_gate();
    invalid["plan"]["stages"][0]["traffic_percent"] = json!(140);
    let r = s.post_json(gate, None, &invalid);
    assert_eq!(r.status, 422, "{}", r.body);

    // A 10 MB body, declared up front: refused before it is sent.
    let reply = support::server::raw(
        &s.addr,
        format!(
            "POST {gate} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            10 << 20
        )
        .as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("body_too_large"), "{reply}");
    // The same body streamed without a declared length: cut off at the cap.
    let mut chunked = format!("POST {gate} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 1 << 20));
        chunked.extend_from_slice(b"\r\n");
    }
    let reply = support::server::raw(&s.addr, &chunked);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    let r = s.post_json("/v1/decisions/rollout", None, &high_risk_gate());
    assert_eq!(r.status, 404);
    assert!(error_of(&r).1.contains("unknown decision 'rollout'"));

    let r = s.post_json("/v1/decisions/gate?bundle=nope", None, &high_risk_gate());
    assert_eq!(r.status, 404);
    assert_eq!(error_of(&r).0, "unknown_bundle");

    let r = s.send("DELETE", "/v1/decisions/gate", None, None, None);
    assert_eq!(r.status, 405);
    assert_eq!(error_of(&r).0, "method_not_allowed");

    let r = s.get("/v2/anything", None);
    assert_eq!(r.status, 404);
    assert_eq!(error_of(&r).0, "not_found");

    // Still serving, and never a 500.
    assert_eq!(s.get("/healthz", None).status, 200);
    assert_eq!(
        s.post_json(gate, None, &high_risk_gate()).json()["outcome"],
        "allow"
    );
    let metrics = s.get("/metrics", None).body;
    assert!(!metrics.contains("class=\"5xx\""), "{metrics}");
}

#[test]
fn a_list_longer_than_the_configured_bound_is_a_422_naming_the_list() {
    let d = deployment("[limits]\nmax_list_len = 3\n");
    let s = d.start();
    let mut long = high_risk_gate();
    long["monitoring"]["metrics"] = json!(["a", "b", "c", "d"]);
    let r = s.post_json("/v1/decisions/gate", None, &long);
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], "request.invalid");
    assert_eq!(v["error"]["path"], "/monitoring/metrics");
    assert_eq!(v["error"]["message"], "expected at most 3 items, found 4");
    long["monitoring"]["metrics"] = json!(["a", "b", "c"]);
    let r = s.post_json("/v1/decisions/gate", None, &long);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn tokens_map_to_roles_with_401_and_403_and_health_needs_none() {
    let (gateway, gateway_hash) = stagegate::auth::new_token();
    let (publisher, publisher_hash) = stagegate::auth::new_token();
    let d = deployment(&format!(
        "[[tokens]]\nname = \"rollout-controller\"\nsha256 = \"{gateway_hash}\"\nroles = [\"gateway\"]\n\
         [[tokens]]\nname = \"compliance\"\nsha256 = \"{publisher_hash}\"\nroles = [\"publisher\"]\n"
    ));
    let s = d.start();
    let gate = "/v1/decisions/gate";
    let r = s.post_json(gate, None, &high_risk_gate());
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(
        s.post_json(gate, Some("not-a-token"), &high_risk_gate())
            .status,
        401
    );
    let r = s.post_json(gate, Some(&publisher), &high_risk_gate());
    assert_eq!(r.status, 403);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gateway")
    );
    assert_eq!(
        s.post_json(gate, Some(&gateway), &high_risk_gate()).status,
        200
    );

    let r = s.put_bundle(
        "iso42001-reference",
        Some(&gateway),
        &d.reference("1.0.1"),
        false,
    );
    assert_eq!(r.status, 403, "a gateway may not publish");
    let r = s.put_bundle(
        "iso42001-reference",
        Some(&publisher),
        &d.reference("1.0.1"),
        false,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(s.get("/v1/bundles", None).status, 401);
    assert_eq!(s.get("/v1/bundles", Some(&gateway)).status, 200);
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(s.get(open, None).status, 200, "{open}");
    }
    assert!(s.logs().contains("rollout-controller") || s.logs().contains("compliance"));
}

#[test]
fn without_tokens_a_public_listen_address_is_narrowed_to_loopback() {
    let d = deployment_with("listen = \"0.0.0.0:0\"", "");
    // The harness passes --listen 127.0.0.1:0; check the narrowing on the
    // configured address directly, as serve applies it.
    let config = stagegate::config::Config::load(&d.config()).unwrap();
    let addr = stagegate::server::effective_listen(&config);
    assert!(addr.ip().is_loopback(), "{addr}");
    let s = d.start();
    assert!(s.addr.starts_with("127.0.0.1:"));
    assert!(s.logs().contains("open development mode"), "{}", s.logs());
}

#[test]
fn bundles_list_and_metrics_report_what_is_active_and_what_was_decided() {
    let d = deployment("");
    let s = d.start();
    for _ in 0..3 {
        s.post_json("/v1/decisions/gate", None, &high_risk_gate());
    }
    let v = s.get("/v1/bundles", None).json();
    let b = &v["bundles"][0];
    assert_eq!(b["name"], "iso42001-reference");
    assert_eq!(b["version"], "1.0.0");
    assert_eq!(b["signers"][0]["name"], "dev");
    assert!(b["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(b["activated_at"].as_str().is_some());
    assert_eq!(v["default"], "iso42001-reference");

    let m = s.get("/metrics", None).body;
    assert!(
        m.contains("stagegate_decisions_total{decision=\"gate\",outcome=\"allow\",bundle=\"iso42001-reference\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("stagegate_decision_duration_seconds_count{decision=\"gate\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("stagegate_bundle_activations_total{bundle=\"iso42001-reference\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("stagegate_bundle_info{bundle=\"iso42001-reference\",version=\"1.0.0\""),
        "{m}"
    );
}

#[test]
fn an_invalid_config_is_refused_before_the_port_is_bound() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[limits]\nconcurency = 4\n").unwrap();
    let out = support::run(
        dir.path(),
        &["serve", "--config", "bad.toml", "--listen", "127.0.0.1:0"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let (_, err) = support::text(&out);
    assert!(err.contains("invalid configuration"), "{err}");
    assert!(err.contains("concurency"), "{err}");
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn the_embedded_defaults_serve_the_reference_policy_from_a_fresh_checkout() {
    // A fresh checkout's layout: policies/ (whose crate path leads back to
    // guest/ in the real tree), no data/, no keys.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("policies"), dir.path().join("policies")).unwrap();
    let s = Server::start(dir.path(), None);
    let r = s.post_json("/v1/decisions/gate", None, &high_risk_gate());
    assert_eq!(r.status, 200, "{}\n{}", r.body, s.logs());
    assert_eq!(r.json()["outcome"], "allow");
    assert!(
        dir.path().join("data/keys/dev").exists(),
        "development key created"
    );
    assert!(dir.path().join("data/keys/dev.pub").exists());
    assert!(
        dir.path()
            .join("data/bundles/iso42001-reference/active.bundle")
            .exists()
    );
}

/// One raw request with a chosen `Host`, for what ureq will not send.
fn with_host(
    s: &Server,
    method: &str,
    path: &str,
    host: &str,
    ct: Option<&str>,
    body: &str,
) -> String {
    let ct = ct
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    support::server::raw(
        &s.addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn open_mode_refuses_a_host_that_is_not_loopback() {
    let d = deployment("");
    let s = d.start();
    let body = high_risk_gate().to_string();
    // A page on evil.example whose name now resolves to 127.0.0.1 (DNS
    // rebinding) still says so in Host.
    let r = with_host(
        &s,
        "POST",
        "/v1/decisions/gate",
        "evil.example:8080",
        Some("application/json"),
        &body,
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("host_not_allowed"), "{r}");
    for host in ["localhost:8080", "127.0.0.1", "[::1]:80"] {
        let r = with_host(
            &s,
            "POST",
            "/v1/decisions/gate",
            host,
            Some("application/json"),
            &body,
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{host}: {r}");
    }
}

#[test]
fn with_tokens_any_host_name_is_served() {
    let (gateway, hash) = stagegate::auth::new_token();
    let d = deployment(&format!(
        "[[tokens]]\nname = \"gw\"\nsha256 = \"{hash}\"\nroles = [\"gateway\"]\n"
    ));
    let s = d.start();
    let r = support::server::raw(
        &s.addr,
        format!(
            "GET /healthz HTTP/1.1\r\nHost: stagegate.internal\r\nAuthorization: Bearer {gateway}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn open_mode_refuses_state_changes_a_web_form_could_send() {
    let d = deployment("");
    let s = d.start();
    let system = r#"{"id":"s1","risk_tier":"low"}"#;
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let r = support::server::send(
            &s.url("/v1/systems"),
            "POST",
            None,
            ct,
            Some(system.as_bytes()),
        );
        assert_eq!(r.status, 415, "{ct:?}: {}", r.body);
    }
    let r = support::server::send(
        &s.url("/v1/bundles/iso42001-reference"),
        "PUT",
        None,
        Some("text/plain"),
        Some(&d.reference("1.0.1")),
    );
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(
        s.get("/v1/bundles/iso42001-reference", None).json()["active"]["version"],
        "1.0.0"
    );
    // JSON writes go through; decisions keep taking curl -d's form type.
    let r = support::server::send(
        &s.url("/v1/systems"),
        "POST",
        None,
        Some("application/json"),
        Some(system.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = support::server::send(
        &s.url("/v1/decisions/gate"),
        "POST",
        None,
        Some("application/x-www-form-urlencoded"),
        Some(high_risk_gate().to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn refused_uploads_are_not_buffered() {
    let (publisher, hash) = stagegate::auth::new_token();
    let d = deployment(&format!(
        "[[tokens]]\nname = \"pub\"\nsha256 = \"{hash}\"\nroles = [\"publisher\"]\n"
    ));
    let s = d.start();
    let _ = publisher;
    let before = s.peak_rss_kib().unwrap();
    let body = vec![0x1fu8; 8 << 20];
    let url = s.url("/v1/bundles/iso42001-reference");
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let (url, body) = (&url, &body);
                scope.spawn(move || {
                    support::server::send(
                        url,
                        "PUT",
                        None,
                        Some("application/octet-stream"),
                        Some(body),
                    )
                    .status
                })
            })
            .collect();
        for h in handles {
            let status = h.join().unwrap();
            // The 401 arrives, or the connection is closed once the drain
            // cap is passed: never a 2xx, never a 5xx.
            assert!(status == 401 || status == 0, "status {status}");
        }
    });
    let after = s.peak_rss_kib().unwrap();
    eprintln!("peak RSS before {before} KiB, after 64 refused 8 MiB uploads {after} KiB");
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "peak RSS grew by {} KiB",
        after - before
    );
}

#[test]
fn a_flood_of_notice_requests_does_not_starve_decisions() {
    let d = deployment("");
    let s = d.start();
    let ok = |r: support::server::Reply| assert!(r.status < 300, "{}", r.body);
    ok(s.post_json(
        "/v1/systems",
        None,
        &json!({"id": "s1", "risk_tier": "low", "name": "S1"}),
    ));
    ok(s.post_json(
        "/v1/systems/s1/releases",
        None,
        &json!({"version": "1.0.0"}),
    ));
    let p99 = |s: &Server| {
        let url = s.url("/v1/decisions/gate");
        let body = high_risk_gate().to_string();
        let mut took: Vec<std::time::Duration> = (0..200)
            .map(|_| {
                let t = std::time::Instant::now();
                let r = support::server::send(
                    &url,
                    "POST",
                    None,
                    Some("application/json"),
                    Some(body.as_bytes()),
                );
                assert_eq!(r.status, 200, "{}", r.body);
                t.elapsed()
            })
            .collect();
        took.sort();
        took[198]
    };
    // The same decisions during a flood of notice requests, and during a
    // flood as large of /healthz (answered from memory, no database): the
    // second is the baseline, the cost of sharing the machine with sixteen
    // busy clients, measured in the same run.
    let flood = |path: &(dyn Fn(u64, usize) -> String + Sync)| {
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let floods: Vec<_> = (0..16)
                .map(|i| {
                    let (s, stop) = (&s, &stop);
                    scope.spawn(move || {
                        let mut n = 0u64;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let r = s.get(&path(n, i), None);
                            assert!(
                                // 429: the flood's own per-peer limit on
                                // tokenless requests, which is the point.
                                r.status == 200
                                    || r.status == 404
                                    || r.status == 429
                                    || r.status == 503,
                                "{}",
                                r.body
                            );
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(300));
            let flooded = p99(&s);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (
                flooded,
                floods.into_iter().map(|h| h.join().unwrap()).sum::<u64>(),
            )
        })
    };
    let quiet = p99(&s);
    // Real and made-up systems alike.
    let (flooded, served) = flood(&|n, i| {
        if i % 2 == 0 {
            "/v1/systems/s1/notice".to_string()
        } else {
            format!("/v1/systems/nope-{n}/notice")
        }
    });
    let (busy, health) = flood(&|_, _| "/healthz".to_string());
    eprintln!(
        "decision p99: {quiet:?} quiet, {flooded:?} during {served} notice requests from 16 clients, {busy:?} during {health} /healthz requests from 16 clients"
    );
    // Isolation, not a benchmark: a decision stuck behind the notice's
    // database work would wait for whole queries, and the log writer for
    // a connection; one that only shares the CPU waits as long as beside
    // /healthz.
    assert!(
        flooded < busy * 4,
        "p99 {flooded:?} beside notices, {busy:?} beside /healthz (quiet {quiet:?})"
    );
}

//! Bundle distribution end to end: the real `stagegate` binary pulling
//! from a real OCI registry (Debian's `docker-registry`, the CNCF
//! distribution registry, on a loopback port) and from an HTTP server that
//! counts its requests. Every pulled bundle goes through the same
//! activation as an upload: these tests prove the source-specific parts
//! (tags, digests, conditional requests, outages) around it.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::high_risk_gate;
use support::load::Load;
use support::oci_registry::Registry;
use support::server::{Deployment, Server};

const NAME: &str = "iso42001-reference";
/// Short, so the tests run fast; the behaviour does not depend on it.
const POLL_MS: u64 = 200;

fn oci_deployment(reg: &Registry, sources: &str) -> Deployment {
    Deployment::new(&format!(
        "[limits]\nconcurrency = 512\n[sources]\n{sources}\n[[bundles]]\nname = \"{NAME}\"\ndefault = true\noci = \"{}/compliance/iso42001:1\"\nplain_http = true\npoll_interval_ms = {POLL_MS}\n",
        reg.addr
    ))
}

/// `stagegate push` of `bytes` to `repo_tag`; returns the manifest digest.
fn push(d: &Deployment, reg: &Registry, bytes: &[u8], repo_tag: &str) -> String {
    let file = d.path("push.bundle");
    std::fs::write(&file, bytes).unwrap();
    let out = support::run(
        d.dir.path(),
        &[
            "push",
            file.to_str().unwrap(),
            &reg.reference(repo_tag),
            "--plain-http",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "push failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("manifest "))
        .expect("push prints the manifest digest")
        .to_string()
}

fn decide(s: &Server) -> serde_json::Value {
    s.post_json("/v1/decisions/gate", None, &high_risk_gate())
        .json()
}

fn status(s: &Server) -> serde_json::Value {
    s.get(&format!("/v1/bundles/{NAME}"), None).json()
}

fn active_version(s: &Server) -> Option<String> {
    status(s)["active"]["version"].as_str().map(str::to_string)
}

/// The value of the metric line starting with `series` (labels included).
fn metric(s: &Server, series: &str) -> f64 {
    let text = s.get("/metrics", None).body;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn polls(s: &Server, result: &str) -> f64 {
    metric(
        s,
        &format!("stagegate_bundle_source_polls_total{{bundle=\"{NAME}\",result=\"{result}\"}}"),
    )
}

fn digest_of(bytes: &[u8]) -> String {
    stagegate::bundle::Bundle::from_bytes(bytes, &Default::default())
        .unwrap()
        .digest()
}

#[test]
fn a_pushed_bundle_is_pulled_verified_activated_and_an_unchanged_tag_costs_one_request_per_poll() {
    let Some(reg) = Registry::start() else { return };
    let d = oci_deployment(&reg, "");
    let bytes = d.reference("1.0.0");
    let manifest = push(&d, &reg, &bytes, "compliance/iso42001:1");
    let s = d.start();
    support::wait_until("the pushed bundle", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    let v = decide(&s);
    assert_eq!(v["outcome"], "allow", "{v:#}");
    assert_eq!(v["policy"]["digest"], digest_of(&bytes));
    let st = status(&s);
    assert_eq!(st["active"]["origin"]["kind"], "oci", "{st:#}");
    assert_eq!(st["active"]["origin"]["manifest_digest"], manifest);
    let src = &st["source"];
    assert_eq!(src["kind"], "oci");
    assert_eq!(
        src["location"],
        format!("{}/compliance/iso42001:1", reg.addr)
    );
    assert_eq!(src["manifest_digest"], manifest);
    assert_eq!(src["consecutive_failures"], 0);
    assert_eq!(src["stale"], false);
    assert!(src["next_poll_at"].is_string(), "{src:#}");
    assert_eq!(polls(&s, "changed"), 1.0);
    assert!(
        metric(
            &s,
            &format!("stagegate_bundle_source_last_success_timestamp_seconds{{bundle=\"{NAME}\"}}")
        ) > 1.7e9
    );

    // Unchanged polls: one conditional manifest request each, no blob.
    let blob_gets = reg.requests("GET", "/blobs/");
    let not_modified = || reg.requests("GET", "http.response.status=304");
    let (polls_before, requests_before, nm_before) =
        (polls(&s, "unchanged"), reg.all_requests(), not_modified());
    support::wait_until("8 more unchanged polls", support::HANG, || {
        polls(&s, "unchanged") >= polls_before + 8.0
    });
    let (polls_after, requests_after, nm_after) =
        (polls(&s, "unchanged"), reg.all_requests(), not_modified());
    let (dp, dr) = (
        polls_after - polls_before,
        requests_after as f64 - requests_before as f64,
    );
    eprintln!(
        "measured: {dp} unchanged polls caused {dr} registry requests ({:.2} per poll); blob GETs {} -> {}",
        dr / dp,
        blob_gets,
        reg.requests("GET", "/blobs/")
    );
    assert!(
        (dr - dp).abs() <= 1.0,
        "{dp} unchanged polls made {dr} registry requests"
    );
    assert_eq!(
        reg.requests("GET", "/blobs/"),
        blob_gets,
        "an unchanged tag downloaded a blob"
    );
    // Conditional: the registry answered 304, without the manifest body.
    assert!(
        ((nm_after - nm_before) as f64 - dr).abs() <= 1.0,
        "{} of {dr} manifest requests were answered 304",
        nm_after - nm_before
    );

    // `stagegate pull` fetches the same bytes, verified against the trust store.
    let out = support::run(
        d.dir.path(),
        &[
            "pull",
            &reg.reference("compliance/iso42001:1"),
            "--out",
            "pulled.bundle",
            "--plain-http",
            "--trust",
            "trust",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(d.path("pulled.bundle")).unwrap(), bytes);
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
}

#[test]
fn a_tag_moved_under_load_activates_within_a_poll_and_fails_no_request() {
    let Some(reg) = Registry::start() else { return };
    let d = oci_deployment(&reg, "");
    push(&d, &reg, &d.reference("1.0.0"), "compliance/iso42001:1");
    let s = d.start();
    support::wait_until("1.0.0", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    let url = s.url("/v1/decisions/gate");
    let load = Load::start(4, url, body, |v| {
        v["policy"]["version"].as_str().unwrap_or("").to_string()
    });
    std::thread::sleep(Duration::from_millis(300));
    push(&d, &reg, &d.reference("1.1.0"), "compliance/iso42001:1");
    // The push returns once the registry serves the new manifest: from
    // here on, every poll sees the moved tag.
    let served = stagegate::decision::Timestamp::now();
    let unchanged_at_push = polls(&s, "unchanged");
    support::wait_until("1.1.0 from the moved tag", support::HANG, || {
        active_version(&s).as_deref() == Some("1.1.0")
    });
    // Within a poll: the poll that found the moved tag was the first to
    // start after the push, or one already under way that read the old
    // manifest. Counted in polls, not in milliseconds.
    let unchanged_since_push = polls(&s, "unchanged") - unchanged_at_push;
    let activated_at = stagegate::decision::Timestamp::parse(
        status(&s)["active"]["activated_at"].as_str().unwrap(),
    )
    .unwrap();
    let took = Duration::from_millis((activated_at.millis() - served.millis()).max(0) as u64);
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop();
    let st = status(&s);
    eprintln!(
        "measured: tag move to activation {} ms (poll interval {POLL_MS} ms ±20 %, compiled cache hit: {}, load {} ms)",
        took.as_millis(),
        st["active"]["compiled_from_cache"],
        st["active"]["load_millis"]
    );
    assert_eq!(st["active"]["compiled_from_cache"], true, "{st:#}");
    assert!(
        unchanged_since_push <= 1.0,
        "{unchanged_since_push} polls after the registry served the new tag found nothing new (activation after {took:?})"
    );
    report.assert_none_failed(50);
    assert_eq!(
        report.all_seen(),
        ["1.0.0".to_string(), "1.1.0".to_string()].into(),
        "every decision's version is the old or the new one, and both were seen"
    );
}

#[test]
fn older_same_version_unsigned_and_untrusted_bundles_under_the_tag_are_refused_and_the_active_one_serves()
 {
    let Some(reg) = Registry::start() else { return };
    let d = oci_deployment(&reg, "");
    push(&d, &reg, &d.reference("1.0.0"), "compliance/iso42001:1");
    let s = d.start();
    support::wait_until("1.0.0", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    let before = decide(&s);
    let untrusted = {
        let other = d.path("other-key");
        stagegate::bundle::keys::generate(&other).unwrap();
        let mut b = stagegate::bundle::Bundle::from_bytes(
            &d.bundle_from(
                support::reference_bundle(),
                NAME,
                "1.1.0",
                "stagegate:policy@1.0.0",
                false,
            ),
            &Default::default(),
        )
        .unwrap();
        b.sign(&stagegate::bundle::keys::load_secret(&other).unwrap());
        b.to_bytes().unwrap()
    };
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("older", d.reference("0.9.0"), "lower than"),
        (
            "same version, other content",
            d.reference_with_params("1.0.0", serde_json::json!({"stagegate_test_marker": 1})),
            "same precedence",
        ),
        (
            "unsigned",
            d.bundle_from(
                support::reference_bundle(),
                NAME,
                "1.1.0",
                "stagegate:policy@1.0.0",
                false,
            ),
            "unsigned",
        ),
        ("untrusted signer", untrusted, "by trusted keys"),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        let manifest = push(&d, &reg, &bytes, "compliance/iso42001:1");
        support::wait_until(what, support::HANG, || {
            let st = status(&s);
            st["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event"] == "rejected")
                .count()
                == i + 1
        });
        let st = status(&s);
        let rejection = &st["last_rejection"];
        assert!(
            rejection["reason"].as_str().unwrap().contains(reason),
            "{what}: {st:#}"
        );
        assert_eq!(rejection["origin"]["kind"], "oci", "{what}");
        assert_eq!(rejection["origin"]["manifest_digest"], manifest, "{what}");
        assert_eq!(st["source"]["last_result"], "rejected", "{what}: {st:#}");
        assert!(
            st["source"]["last_error"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{what}: {st:#}"
        );
        assert_eq!(st["active"]["version"], "1.0.0", "{what}");
        let v = decide(&s);
        assert_eq!(v["policy"], before["policy"], "{what} changed the policy");
        assert_eq!(v["outcome"], before["outcome"]);
    }
    assert!(polls(&s, "rejected") >= 4.0);
    assert_eq!(s.get("/readyz", None).status, 200);
    // A good version under the tag is taken again.
    push(&d, &reg, &d.reference("1.2.0"), "compliance/iso42001:1");
    support::wait_until("1.2.0", support::HANG, || {
        active_version(&s).as_deref() == Some("1.2.0")
    });
}

#[test]
fn a_blob_corrupted_in_the_registry_storage_is_refused_by_its_digest() {
    let Some(reg) = Registry::start() else { return };
    let d = oci_deployment(&reg, "");
    push(&d, &reg, &d.reference("1.0.0"), "compliance/iso42001:1");
    let s = d.start();
    support::wait_until("1.0.0", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    // The new version's layer goes in under another tag, is corrupted in
    // storage (same size), then tagged: the push finds the blob present
    // and does not upload it again.
    let newer = d.reference("1.1.0");
    push(&d, &reg, &newer, "compliance/iso42001:staging");
    let layer = stagegate::distribution::sha256_digest(&newer);
    let path = reg.blob_path(&layer);
    let mut stored = std::fs::read(&path).unwrap();
    assert_eq!(stored, newer, "the registry stores the layer as pushed");
    let n = stored.len() / 2;
    stored[n] ^= 0xff;
    std::fs::write(&path, &stored).unwrap();
    push(&d, &reg, &newer, "compliance/iso42001:1");
    support::wait_until("the refusal", support::HANG, || {
        status(&s)["last_rejection"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("digest mismatch"))
    });
    let st = status(&s);
    assert!(
        st["last_rejection"]["reason"]
            .as_str()
            .unwrap()
            .contains(&layer),
        "{st:#}"
    );
    assert_eq!(st["active"]["version"], "1.0.0");
    assert_eq!(decide(&s)["policy"]["version"], "1.0.0");
    assert!(polls(&s, "rejected") >= 1.0);
}

#[test]
fn with_the_registry_down_decisions_go_on_status_shows_backoff_and_a_restart_serves_the_persisted_bundle()
 {
    let Some(mut reg) = Registry::start() else {
        return;
    };
    let d = oci_deployment(&reg, "max_backoff_ms = 1000\nstale_after_ms = 1500\n");
    let bytes = d.reference("1.3.0");
    push(&d, &reg, &bytes, "compliance/iso42001:1");
    let s = d.start();
    support::wait_until("1.3.0", support::HANG, || {
        active_version(&s).as_deref() == Some("1.3.0")
    });
    reg.stop();
    // Decisions go on, answered by the active bundle, until the source has
    // failed twice and gone stale (1.5 s without a success).
    let started = Instant::now();
    let mut answered = 0;
    loop {
        let v = decide(&s);
        assert_eq!(v["outcome"], "allow", "{v:#}");
        assert_eq!(v["policy"]["version"], "1.3.0");
        answered += 1;
        let src = status(&s)["source"].clone();
        if answered > 10
            && src["stale"] == true
            && src["consecutive_failures"].as_u64().unwrap_or(0) >= 2
        {
            break;
        }
        assert!(
            started.elapsed() < support::HANG,
            "the source never went stale: {src:#}"
        );
    }
    let st = status(&s);
    let src = &st["source"];
    assert_eq!(src["last_result"], "error", "{st:#}");
    assert!(
        src["consecutive_failures"].as_u64().unwrap() >= 2,
        "{src:#}"
    );
    let backoff = src["backoff_ms"].as_u64().expect("a backoff while failing");
    assert!((100..=1000).contains(&backoff), "{src:#}");
    assert!(
        src["last_error"].as_str().unwrap().contains(&reg.addr),
        "{src:#}"
    );
    assert_eq!(src["stale"], true, "no success for 1.5 s (stale_after)");
    // The status judges staleness when it is read; the gauge is set by the
    // poller on its next attempt (a backoff of at most 1 s away).
    let stale = format!("stagegate_bundle_source_stale{{bundle=\"{NAME}\"}}");
    support::wait_until("the stale gauge set", support::HANG, || {
        metric(&s, &stale) == 1.0
    });
    assert!(polls(&s, "error") >= 2.0);
    assert_eq!(s.get("/readyz", None).status, 200);

    // Restart with the registry still down: the persisted bundle serves at once.
    s.kill();
    let s = d.start();
    let v = decide(&s);
    assert_eq!(v["outcome"], "allow", "{v:#}");
    assert_eq!(v["policy"]["version"], "1.3.0");
    assert_eq!(v["policy"]["digest"], digest_of(&bytes));
    assert_eq!(status(&s)["active"]["origin"]["kind"], "persisted");

    // The registry returns: the source recovers without a new activation.
    reg.restart();
    support::wait_until("the source to recover", support::HANG, || {
        let src = status(&s)["source"].clone();
        src["consecutive_failures"] == 0
            && src["stale"] == false
            && src["last_result"] == "unchanged"
    });
    assert_eq!(active_version(&s).as_deref(), Some("1.3.0"));
}

/// A one-file HTTP server that answers a matching `If-None-Match` (or,
/// when it sends `Last-Modified` instead of an `ETag`,
/// `If-Modified-Since`) with 304, and counts what it sent.
struct CountingServer {
    addr: String,
    body: Arc<Mutex<Vec<u8>>>,
    full: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    /// The `Authorization` header of the last request.
    authorization: Arc<Mutex<Option<String>>>,
}

/// Which validator the counting server sends.
#[derive(Clone, Copy)]
enum Validator {
    ETag,
    LastModified,
}

impl CountingServer {
    fn start(body: Vec<u8>, validator: Validator) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let body = Arc::new(Mutex::new(body));
        let full = Arc::new(AtomicUsize::new(0));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let authorization = Arc::new(Mutex::new(None));
        let (b, f, nm, auth) = (
            body.clone(),
            full.clone(),
            not_modified.clone(),
            authorization.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let (mut if_none_match, mut if_modified_since) = (None, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("if-none-match") {
                            if_none_match = Some(v.trim().to_string());
                        } else if k.eq_ignore_ascii_case("if-modified-since") {
                            if_modified_since = Some(v.trim().to_string());
                        } else if k.eq_ignore_ascii_case("authorization") {
                            *auth.lock().unwrap() = Some(v.trim().to_string());
                        }
                    }
                }
                let bytes = b.lock().unwrap().clone();
                let digest = stagegate::distribution::sha256_digest(&bytes);
                // A stand-in date per content: a new file has a new date.
                let (header, current, asked) = match validator {
                    Validator::ETag => ("ETag", format!("\"{digest}\""), if_none_match),
                    Validator::LastModified => (
                        "Last-Modified",
                        format!(
                            "Thu, 26 Nov 2026 {:02}:00:00 GMT",
                            digest.as_bytes()[7] % 24
                        ),
                        if_modified_since,
                    ),
                };
                if asked.as_deref() == Some(current.as_str()) {
                    nm.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(
                        format!("HTTP/1.1 304 Not Modified\r\n{header}: {current}\r\nConnection: close\r\n\r\n").as_bytes(),
                    );
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\n{header}: {current}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            bytes.len()
                        )
                        .as_bytes(),
                    );
                    let _ = conn.write_all(&bytes);
                }
            }
        });
        CountingServer {
            addr,
            body,
            full,
            not_modified,
            authorization,
        }
    }
}

#[test]
fn an_unchanged_bundle_on_an_http_source_costs_only_304s() {
    let d = Deployment::new("");
    let server = CountingServer::start(d.reference("1.0.0"), Validator::ETag);
    std::fs::write(
        d.config(),
        std::fs::read_to_string(d.config()).unwrap()
            + &format!(
                "[[bundles]]\nname = \"{NAME}\"\ndefault = true\nurl = \"http://{}/iso42001.bundle?sig=s3cr3t\"\npoll_interval_ms = 100\nbearer_token_file = \"token\"\n",
                server.addr
            ),
    )
    .unwrap();
    std::fs::write(d.path("token"), "first-token\n").unwrap();
    let s = d.start();
    support::wait_until("1.0.0 over HTTP", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    assert_eq!(
        server.authorization.lock().unwrap().as_deref(),
        Some("Bearer first-token")
    );
    support::wait_until("10 unchanged polls", support::HANG, || {
        server.not_modified.load(Ordering::SeqCst) >= 10
    });
    let (full, not_modified) = (
        server.full.load(Ordering::SeqCst),
        server.not_modified.load(Ordering::SeqCst),
    );
    eprintln!(
        "measured: HTTP source, unchanged at 100 ms: {full} full download(s), {not_modified} 304s"
    );
    assert_eq!(full, 1, "the unchanged bundle was downloaded again");
    let st = status(&s);
    assert_eq!(st["source"]["kind"], "url");
    assert_eq!(
        st["source"]["location"],
        format!("http://{}/iso42001.bundle?sig=***", server.addr)
    );
    assert!(!st.to_string().contains("s3cr3t"), "{st:#}");
    assert!(
        st["source"]["etag"]
            .as_str()
            .unwrap()
            .starts_with("\"sha256:")
    );
    assert_eq!(st["active"]["origin"]["kind"], "url");
    assert!(polls(&s, "unchanged") >= not_modified as f64 - 1.0);

    // A rotated token is used from the next poll, without a restart.
    std::fs::write(d.path("token"), "second-token\n").unwrap();
    support::wait_until("the rotated token", support::HANG, || {
        server.authorization.lock().unwrap().as_deref() == Some("Bearer second-token")
    });

    // A new file is fetched once and activated.
    *server.body.lock().unwrap() = d.reference("1.1.0");
    support::wait_until("1.1.0 over HTTP", support::HANG, || {
        active_version(&s).as_deref() == Some("1.1.0")
    });
    assert_eq!(server.full.load(Ordering::SeqCst), 2);
    assert!(!s.logs().contains("s3cr3t"), "a credential reached the log");
}

/// `ci` / `stagegate-test`, bcrypt (the only htpasswd format the registry
/// reads), hashed once with Python's `bcrypt` at cost 4.
const HTPASSWD: &str = "ci:$2b$04$cQMaXOEuz0uvg0a1PSasqelvFf1wtESECP2NCttOCiMH.ie.lmCR2";

#[test]
fn a_registry_that_wants_basic_auth_is_reached_with_the_docker_config_login_and_refused_without() {
    use base64::Engine;
    let Some(reg) = Registry::start_with(Some(HTPASSWD)) else {
        return;
    };
    let d = Deployment::new("");
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:stagegate-test");
    std::fs::write(
        d.path("docker-config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    let bytes = d.reference("1.0.0");
    std::fs::write(d.path("push.bundle"), &bytes).unwrap();
    let reference = reg.reference("compliance/iso42001:1");
    // With no login for the registry the push is refused by its 401.
    std::fs::write(d.path("empty.json"), r#"{"auths":{}}"#).unwrap();
    let out = support::run(
        d.dir.path(),
        &[
            "push",
            "push.bundle",
            &reference,
            "--plain-http",
            "--docker-config",
            "empty.json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("none are configured"),
        "{err}"
    );
    let out = support::run(
        d.dir.path(),
        &[
            "push",
            "push.bundle",
            &reference,
            "--plain-http",
            "--docker-config",
            "docker-config.json",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");

    let base = std::fs::read_to_string(d.config()).unwrap();
    let entry = |extra: &str| {
        format!(
            "{base}[[bundles]]\nname = \"{NAME}\"\ndefault = true\noci = \"{}/compliance/iso42001:1\"\nplain_http = true\npoll_interval_ms = {POLL_MS}\n{extra}\n",
            reg.addr
        )
    };
    // A service without the login reports the refusal and activates nothing.
    std::fs::write(d.config(), entry("docker_config = \"empty.json\"")).unwrap();
    let s = d.start();
    support::wait_until("a failed poll", support::HANG, || {
        status(&s)["source"]["last_result"] == "error"
    });
    let st = status(&s);
    assert!(
        st["source"]["last_error"].as_str().unwrap().contains("401"),
        "{st:#}"
    );
    assert!(active_version(&s).is_none());
    assert_eq!(s.get("/readyz", None).status, 503);
    s.kill();
    // With it, the bundle is pulled.
    std::fs::write(d.config(), entry("docker_config = \"docker-config.json\"")).unwrap();
    let s = d.start();
    support::wait_until("1.0.0 with credentials", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    assert_eq!(decide(&s)["policy"]["digest"], digest_of(&bytes));
}

/// A registry that hands out tokens (`WWW-Authenticate: Bearer`) from a
/// token endpoint that wants basic credentials, serving one bundle.
struct TokenRegistry {
    addr: String,
    token_requests: Arc<AtomicUsize>,
}

impl TokenRegistry {
    fn start(bundle: Vec<u8>) -> Self {
        use base64::Engine;
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = token_requests.clone();
        let layer = stagegate::distribution::sha256_digest(&bundle);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.stagegate.bundle.v1",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": stagegate::distribution::sha256_digest(b"{}"), "size": 2},
            "layers": [{"mediaType": "application/vnd.stagegate.bundle.v1.tar+gzip", "digest": layer, "size": bundle.len()}],
        }))
        .unwrap();
        let realm = format!("http://{addr}/token");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci:stagegate-test")
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut authorization = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        authorization = v.trim().to_string();
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let (status, extra, body): (&str, String, Vec<u8>) = if path.starts_with("/token?")
                {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if authorization == basic
                        && path.contains("scope=repository%3Acompliance%2Fiso42001%3Apull")
                        && path.contains("service=fake")
                    {
                        ("200 OK", String::new(), br#"{"token":"t0k3n"}"#.to_vec())
                    } else {
                        ("401 Unauthorized", String::new(), Vec::new())
                    }
                } else if authorization != "Bearer t0k3n" {
                    (
                        "401 Unauthorized",
                        format!(
                            "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:compliance/iso42001:pull\"\r\n"
                        ),
                        Vec::new(),
                    )
                } else if path == "/v2/compliance/iso42001/manifests/1" {
                    (
                        "200 OK",
                        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n".into(),
                        manifest.clone(),
                    )
                } else if path == format!("/v2/compliance/iso42001/blobs/{layer}") {
                    ("200 OK", String::new(), bundle.clone())
                } else {
                    ("404 Not Found", String::new(), Vec::new())
                };
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = conn.write_all(&body);
            }
        });
        TokenRegistry {
            addr,
            token_requests,
        }
    }
}

#[test]
fn a_registry_token_is_fetched_from_the_bearer_challenge_with_basic_credentials() {
    let d = Deployment::new("");
    let bytes = d.reference("1.0.0");
    let reg = TokenRegistry::start(bytes.clone());
    std::fs::write(d.path("login"), "ci:stagegate-test\n").unwrap();
    let out = support::run(
        d.dir.path(),
        &[
            "pull",
            &format!("oci://{}/compliance/iso42001:1", reg.addr),
            "--out",
            "pulled.bundle",
            "--plain-http",
            "--basic-auth-file",
            "login",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(d.path("pulled.bundle")).unwrap(), bytes);
    // One token for the manifest and the blob: the session keeps it.
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 1);

    // Wrong credentials: the token service refuses, and pull says so.
    std::fs::write(d.path("login"), "ci:wrong\n").unwrap();
    let out = support::run(
        d.dir.path(),
        &[
            "pull",
            &format!("oci://{}/compliance/iso42001:1", reg.addr),
            "--out",
            "again.bundle",
            "--plain-http",
            "--basic-auth-file",
            "login",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/token") && err.contains("401"), "{err}");
    assert!(!d.path("again.bundle").exists());
}

#[test]
fn an_http_source_without_etag_is_asked_with_if_modified_since() {
    let d = Deployment::new("");
    let server = CountingServer::start(d.reference("1.0.0"), Validator::LastModified);
    std::fs::write(
        d.config(),
        std::fs::read_to_string(d.config()).unwrap()
            + &format!(
                "[[bundles]]\nname = \"{NAME}\"\ndefault = true\nurl = \"http://{}/iso42001.bundle\"\npoll_interval_ms = 100\n",
                server.addr
            ),
    )
    .unwrap();
    let s = d.start();
    support::wait_until("1.0.0 over HTTP", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    support::wait_until("304s", support::HANG, || {
        server.not_modified.load(Ordering::SeqCst) >= 5
    });
    assert_eq!(server.full.load(Ordering::SeqCst), 1);
    let st = status(&s);
    assert!(
        st["source"]["last_modified"]
            .as_str()
            .unwrap()
            .ends_with("GMT"),
        "{st:#}"
    );
    assert!(st["source"].get("etag").is_none(), "{st:#}");
}

/// An HTTPS server for one file, with the test CA's certificate for
/// 127.0.0.1 (`tests/support/tls/`).
fn https_server(body: Vec<u8>) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let dir = support::root().join("tests/support/tls");
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (config, body) = (config.clone(), body.clone());
            std::thread::spawn(move || {
                let tls = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::StreamOwned::new(tls, conn);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        // A client that refused the certificate hangs up.
                        _ => return,
                    }
                }
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = stream.write_all(&body);
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    addr
}

#[test]
fn a_private_https_server_is_trusted_through_ca_file_and_refused_without() {
    let d = Deployment::new("");
    let addr = https_server(d.reference("1.0.0"));
    let ca = support::root().join("tests/support/tls/ca.pem");
    let base = std::fs::read_to_string(d.config()).unwrap();
    let entry = |extra: &str| {
        format!(
            "{base}[[bundles]]\nname = \"{NAME}\"\ndefault = true\nurl = \"https://{addr}/iso42001.bundle\"\npoll_interval_ms = 200\n{extra}\n"
        )
    };
    // The web PKI roots do not know the private CA.
    std::fs::write(d.config(), entry("")).unwrap();
    let s = d.start();
    support::wait_until("a failed poll", support::HANG, || {
        status(&s)["source"]["last_result"] == "error"
    });
    let st = status(&s);
    assert!(
        st["source"]["last_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{st:#}"
    );
    assert!(active_version(&s).is_none());
    s.kill();
    // With ca_file it is trusted.
    std::fs::write(
        d.config(),
        entry(&format!("ca_file = \"{}\"", ca.display())),
    )
    .unwrap();
    let s = d.start();
    support::wait_until("1.0.0 over HTTPS", support::HANG, || {
        active_version(&s).as_deref() == Some("1.0.0")
    });
    // And a CA file that holds no certificate stops the service at start.
    std::fs::write(d.path("empty.pem"), "").unwrap();
    s.kill();
    std::fs::write(
        d.config(),
        entry(&format!("ca_file = \"{}\"", d.path("empty.pem").display())),
    )
    .unwrap();
    let out = support::run(
        d.dir.path(),
        &[
            "serve",
            "--config",
            d.config().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("empty.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
}

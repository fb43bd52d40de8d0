//! Reproductions of what an attacker tried on the service, each kept as a
//! test: trusted keys whose private half sits beside them beyond loopback,
//! console sign-in from another origin, the console showing more than
//! the API would, the session cookie over TLS without `Secure`, and
//! escalation webhooks aimed at special-purpose addresses.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::records::{Backend, World, deploy, post, registered_release, token};
use support::server::{Reply, Server, reply_of};

// ---------------------------------------------------------------------
// Trust that binds however the configuration is written.

/// `stagegate serve --config CONFIG --check` in `dir`: exit code and stderr.
/// `--check` binds nothing, so a configuration that would listen on every
/// interface is judged without listening anywhere.
fn serve_check(dir: &Path, config: &str) -> (i32, String) {
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let out = support::run(dir, &["serve", "--config", "config.toml", "--check"], None);
    let (stdout, stderr) = support::text(&out);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn public_config(extra: &str) -> String {
    let (_, hash) = stagegate::auth::new_token();
    format!(
        "listen = \"0.0.0.0:8080\"\ndata_dir = \"data\"\n[trust]\ndir = \"trust\"\n{extra}\n[[tokens]]\nname = \"ci\"\nsha256 = \"{hash}\"\nroles = [\"gateway\"]\n"
    )
}

#[test]
fn a_trusted_key_with_its_private_half_beside_it_is_refused_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    // As `stagegate keygen --out trust/ops` leaves it: both halves.
    let out = support::run(d, &["keygen", "--out", "trust/ops"], None);
    assert!(out.status.success(), "{:?}", support::text(&out));
    let (code, text) = serve_check(d, &public_config(""));
    assert_ne!(
        code, 0,
        "a non-loopback service trusted trust/ops.pub with trust/ops beside it: {text}"
    );
    assert!(text.contains("trust/ops"), "names the key file: {text}");
    assert!(
        text.contains("move") || text.contains("remove"),
        "says what to do: {text}"
    );
    // Only the public half: accepted.
    std::fs::remove_file(d.join("trust/ops")).unwrap();
    let (code, text) = serve_check(d, &public_config(""));
    assert_eq!(code, 0, "{text}");
}

#[test]
fn the_development_key_serve_created_is_refused_as_trust_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    // What a first `stagegate serve` leaves: data/keys/dev and dev.pub.
    let out = support::run(d, &["keygen", "--out", "data/keys/dev"], None);
    assert!(out.status.success(), "{:?}", support::text(&out));
    std::fs::copy(d.join("data/keys/dev.pub"), d.join("trust/dev.pub")).unwrap();
    let (code, text) = serve_check(d, &public_config(""));
    assert_ne!(
        code, 0,
        "a non-loopback service trusted a copy of the development key: {text}"
    );
    assert!(text.contains("trust/dev.pub"), "names the key file: {text}");
    assert!(text.contains("data/keys/dev"), "names the dev key: {text}");
}

#[test]
fn an_evidence_key_with_its_private_half_beside_it_is_refused_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    std::fs::create_dir_all(d.join("evidence")).unwrap();
    let out = support::run(d, &["keygen", "--out", "evidence/ci"], None);
    assert!(out.status.success(), "{:?}", support::text(&out));
    let extra = "[[evidence.keys]]\nfile = \"evidence/ci.pub\"\n";
    let (code, text) = serve_check(d, &public_config(extra));
    assert_ne!(
        code, 0,
        "trusted evidence/ci.pub with evidence/ci beside it: {text}"
    );
    assert!(text.contains("evidence/ci"), "names the key file: {text}");
    // On loopback it is development, and allowed.
    let loopback = public_config(extra).replace("0.0.0.0:8080", "127.0.0.1:8080");
    let (code, text) = serve_check(d, &loopback);
    assert_eq!(code, 0, "{text}");
}

// ---------------------------------------------------------------------
// Console.

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build()
}

/// The sign-in form's CSRF field and cookie: (csrf, `name=value` cookie).
fn sign_in_form(s: &Server) -> (String, String) {
    let r = reply_of(agent().get(&s.url("/ui/sign-in")).call());
    assert_eq!(r.status, 200, "{}", r.body);
    // Empty when the form has none (what the tests asserting on the
    // field itself then show).
    let csrf = r
        .body
        .find("name=\"csrf\" value=\"")
        .map(|at| r.body[at + 19..].split('"').next().unwrap().to_string())
        .unwrap_or_default();
    let cookie = r
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap().trim().to_string())
        .unwrap_or_default();
    (csrf, cookie)
}

fn sign_in_post(
    s: &Server,
    origin: Option<&str>,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Reply {
    let mut req = agent().post(&s.url("/ui/sign-in"));
    if let Some(o) = origin {
        req = req.set("Origin", o);
    }
    if let Some(c) = cookie.filter(|c| !c.is_empty()) {
        req = req.set("Cookie", c);
    }
    reply_of(req.send_form(fields))
}

#[test]
fn a_cross_origin_or_tokenless_sign_in_gets_no_session() {
    let w = World::new(Backend::Sqlite, "").unwrap();
    let s = w.start();
    let audit = token("audit");
    // A form on another site posting a valid token: no session.
    let r = sign_in_post(
        &s,
        Some("https://evil.example"),
        None,
        &[("token", audit.as_str())],
    );
    assert!(
        r.header("set-cookie")
            .is_none_or(|c| !c.starts_with("sg_session=") || c.contains("Max-Age=0")),
        "a cross-origin form post got a session: {} {:?}",
        r.status,
        r.headers
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Without the form's CSRF token, even from the same origin: none.
    let origin = format!("http://{}", s.addr);
    let r = sign_in_post(&s, Some(&origin), None, &[("token", audit.as_str())]);
    assert_eq!(r.status, 403, "{}", r.body);
    // A CSRF token from one browser's form does not work with another's
    // cookie.
    let (csrf, _) = sign_in_form(&s);
    let (_, other_cookie) = sign_in_form(&s);
    let r = sign_in_post(
        &s,
        Some(&origin),
        Some(&other_cookie),
        &[("token", audit.as_str()), ("csrf", csrf.as_str())],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The form's own token, cookie and origin: a session.
    let (csrf, cookie) = sign_in_form(&s);
    assert!(!csrf.is_empty(), "the sign-in form carries a CSRF token");
    let r = sign_in_post(
        &s,
        Some(&origin),
        Some(&cookie),
        &[("token", audit.as_str()), ("csrf", csrf.as_str())],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
}

/// Signs in as `who` the way a browser does; returns the session cookie.
fn console_session(s: &Server, who: &str) -> String {
    let (csrf, cookie) = sign_in_form(s);
    let r = sign_in_post(
        s,
        None,
        Some(&cookie),
        &[("token", token(who).as_str()), ("csrf", csrf.as_str())],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    r.header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_deployment_page_shows_the_audit_record_only_to_auditors() {
    let w = World::new(Backend::Sqlite, "").unwrap();
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let id = deploy(&s, &release);
    // The API: the export is the auditors'.
    for who in ["ops", "a.lee"] {
        let r = support::records::get(&s, who, &format!("/v1/deployments/{id}/record"));
        assert_eq!(r.status, 403, "{who}: {}", r.body);
    }
    let page = |who: &str| {
        let cookie = console_session(&s, who);
        let r = reply_of(
            agent()
                .get(&s.url(&format!("/ui/deployments/{id}")))
                .set("Cookie", &cookie)
                .call(),
        );
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        r.body
    };
    let auditor = page("audit");
    assert!(
        auditor.contains("id=\"chain\""),
        "the auditor sees the chain proof"
    );
    assert!(auditor.contains(&format!("/v1/deployments/{id}/record")));
    for who in ["ops", "a.lee"] {
        let body = page(who);
        assert!(
            !body.contains("id=\"chain\"") && !body.contains("Latest signed checkpoint"),
            "{who} is shown the chain proof of the auditors' export"
        );
        assert!(
            !body.contains(&format!("/v1/deployments/{id}/record")),
            "{who} is offered the auditors' export"
        );
        assert!(
            !body.contains("id=\"evidence\""),
            "{who} is shown the release evidence of the auditors' export"
        );
    }
}

#[test]
fn the_session_cookie_is_secure_when_the_console_is_reached_over_tls() {
    let ca = {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = params.signed_by(&server_key, &ca.0, &ca.1).unwrap();
    let w = World::new(Backend::Sqlite, "").unwrap();
    std::fs::create_dir_all(w.d.path("tls")).unwrap();
    std::fs::write(w.d.path("tls/tls.crt"), server_cert.pem()).unwrap();
    std::fs::write(w.d.path("tls/tls.key"), server_key.serialize_pem()).unwrap();
    let config = std::fs::read_to_string(w.d.config()).unwrap();
    std::fs::write(
        w.d.config(),
        format!(
            "listen_tls = \"127.0.0.1:0\"\n{config}\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
            w.d.path("tls/tls.crt").display(),
            w.d.path("tls/tls.key").display()
        ),
    )
    .unwrap();
    let s = w.start();
    let mut addr = None;
    support::wait_until("the TLS listener", Duration::from_secs(30), || {
        addr = s.logs().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "TLS listener ready")
                .then(|| v["address"].as_str().map(str::to_string))
                .flatten()
        });
        addr.is_some()
    });
    let addr = addr.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.0.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .redirects(0)
        .timeout(Duration::from_secs(30))
        .build();
    let r = reply_of(https.get(&format!("https://{addr}/ui/sign-in")).call());
    assert_eq!(r.status, 200, "{}", r.body);
    let form_cookie = r.header("set-cookie").map(str::to_string);
    let at = r.body.find("name=\"csrf\" value=\"").map(|i| i + 19);
    let csrf = at
        .map(|at| r.body[at..].split('"').next().unwrap().to_string())
        .unwrap_or_default();
    let mut req = https.post(&format!("https://{addr}/ui/sign-in"));
    if let Some(c) = &form_cookie {
        req = req.set("Cookie", c.split(';').next().unwrap());
    }
    let r = reply_of(req.send_form(&[("token", &token("audit")), ("csrf", &csrf)]));
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("; Secure"),
        "a session cookie set over TLS lacks Secure: {cookie}"
    );
    // Over plain HTTP (loopback development) it is not marked.
    let plain = console_session(&s, "audit");
    assert!(!plain.is_empty());
}

// ---------------------------------------------------------------------
// Outbound requests: escalation webhooks.

#[test]
fn webhooks_aimed_at_special_purpose_addresses_are_refused() {
    let w = World::new(Backend::Sqlite, "").unwrap();
    let s = w.start();
    for (i, url) in [
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[2002:a9fe:a9fe::1]/hook",
        "http://198.18.0.1/hook",
        "http://240.0.0.1/hook",
        "http://[::a9fe:a9fe]/hook",
        "http://[::ffff:169.254.169.254]/hook",
    ]
    .iter()
    .enumerate()
    {
        let r = post(
            &s,
            "ops",
            "/v1/systems",
            &json!({"id": format!("sys-{i}"), "risk_tier": "low",
                    "escalation_contact": "on-call",
                    "webhooks": [{"url": url, "secret": "0123456789abcdef0123"}]}),
            &[],
        );
        assert!(
            r.status == 400 || r.status == 422,
            "a webhook to {url} was accepted with {}: {}",
            r.status,
            r.body
        );
    }
}

// ---------------------------------------------------------------------
// Outbound requests: OCI registry credentials.

/// What a stand-in server saw: request line and `Authorization` (if any).
type Seen = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A tiny HTTP/1.1 server on `ip` (port chosen by the system) answering
/// each request with `answer(request_line, authorization)` = (status line,
/// extra headers, body). Runs until the test process ends.
fn stand_in(
    ip: &str,
    answer: impl Fn(&str, Option<&str>) -> (String, Vec<(String, String)>, String) + Send + 'static,
) -> (String, Seen) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let (mut length, mut authorization) = (0usize, None);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap_or(("", ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "authorization" => authorization = Some(value.trim().to_string()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let line = line.trim().to_string();
            log.lock()
                .unwrap()
                .push((line.clone(), authorization.clone()));
            let (status, headers, body) = answer(&line, authorization.as_deref());
            let mut out = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = stream.write_all(out.as_bytes());
        }
    });
    (addr, seen)
}

fn oci_client(registry: &str, repo_tag: &str) -> stagegate::distribution::oci::Client {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(dir.join("login"), "robot:s3cret\n").unwrap();
    let reference: stagegate::distribution::oci::Reference =
        format!("{registry}/{repo_tag}").parse().unwrap();
    stagegate::distribution::oci::Client::new(
        reference,
        stagegate::distribution::oci::ClientOptions {
            plain_http: true,
            credential: Some(stagegate::distribution::credentials::Credential::Basic(
                stagegate::distribution::credentials::SecretSource::File(dir.join("login")),
            )),
            // No Docker config.json of the machine's user is read.
            docker_config: Some(dir.join("no-docker-config.json")),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn registry_credentials_never_go_to_a_token_realm_on_another_host() {
    // The token service on 127.0.0.2: another host than the registry's.
    let (realm, realm_seen) = stand_in("127.0.0.2", |_, _| {
        ("200 OK".into(), vec![], r#"{"token":"anonymous"}"#.into())
    });
    let challenge = format!(r#"Bearer realm="http://{realm}/token",service="registry""#);
    let (registry, _) = stand_in("127.0.0.1", move |_, _| {
        (
            "401 Unauthorized".into(),
            vec![("WWW-Authenticate".into(), challenge.clone())],
            "{}".into(),
        )
    });
    let client = oci_client(&registry, "team/policy:1.0.0");
    let _ = client.resolve(None);
    let seen = realm_seen.lock().unwrap().clone();
    for (line, authorization) in &seen {
        assert!(
            authorization.is_none(),
            "the registry's basic credentials were sent to the token realm on another host: {line} {authorization:?}"
        );
    }
}

#[test]
fn an_upload_location_on_another_host_never_receives_authorization() {
    let (elsewhere, elsewhere_seen) = stand_in("127.0.0.2", |_, _| {
        ("201 Created".into(), vec![], String::new())
    });
    let (registry, registry_seen) = stand_in("127.0.0.1", move |line, authorization| {
        if authorization.is_none() {
            return (
                "401 Unauthorized".into(),
                vec![("WWW-Authenticate".into(), "Basic realm=\"test\"".into())],
                "{}".into(),
            );
        }
        if line.starts_with("HEAD ") {
            ("404 Not Found".into(), vec![], String::new())
        } else if line.starts_with("POST ") {
            (
                "202 Accepted".into(),
                vec![(
                    "Location".into(),
                    format!("http://{elsewhere}/upload/session-1"),
                )],
                String::new(),
            )
        } else {
            ("201 Created".into(), vec![], String::new())
        }
    });
    let client = oci_client(&registry, "team/policy:1.0.0");
    let _ = client.push(b"bundle bytes", "policy.bundle", Default::default());
    assert!(
        registry_seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, a)| a.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "the registry itself got its credentials"
    );
    let seen = elsewhere_seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the upload went to its Location");
    for (line, authorization) in &seen {
        assert!(
            authorization.is_none(),
            "the upload Location on another host received Authorization: {line} {authorization:?}"
        );
    }
}

// ---------------------------------------------------------------------
// GitHub deployment protection: which commits map to releases.

fn github_config(d: &Path, release: &str, extra: &str) -> String {
    std::fs::write(d.join("secret"), "s\n").unwrap();
    std::fs::write(d.join("app.pem"), "not read by --check\n").unwrap();
    std::fs::write(d.join("plan.json"), "{}").unwrap();
    format!(
        "data_dir = \"data\"\n[trust]\ndir = \"trust\"\n[integrations.github]\napp_id = 1\nprivate_key_file = \"app.pem\"\nwebhook_secret_file = \"secret\"\n[[integrations.github.environments]]\nrepository = \"acme/credit-scoring\"\nenvironment = \"production\"\nsystem = \"credit-scoring\"\nrelease = \"{release}\"\nplan_file = \"plan.json\"\n{extra}"
    )
}

#[test]
fn a_short_sha_release_mapping_is_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    let (code, text) = serve_check(d, &github_config(d, "v-{short_sha}", ""));
    assert_ne!(
        code, 0,
        "release = \"v-{{short_sha}}\" was accepted: {text}"
    );
    assert!(
        text.contains("integrations.github.environments[0].release"),
        "names the key: {text}"
    );
    let (code, text) = serve_check(d, &github_config(d, "{sha}", ""));
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_ref_release_mapping_needs_an_explicit_list_of_allowed_refs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("trust")).unwrap();
    let (code, text) = serve_check(d, &github_config(d, "{ref}", ""));
    assert_ne!(
        code, 0,
        "release = \"{{ref}}\" without allowed refs was accepted: {text}"
    );
    assert!(
        text.contains("integrations.github.environments[0]") && text.contains("allowed_refs"),
        "names the key and says what to add: {text}"
    );
    let (code, text) = serve_check(
        d,
        &github_config(d, "{ref}", "allowed_refs = [\"refs/tags/v2.3.0\"]\n"),
    );
    assert_eq!(code, 0, "{text}");
}

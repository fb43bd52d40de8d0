//! Admission on managed clusters: the three ways the API server may call
//! the admission route (a token; `require_token = false`; a client
//! certificate under `client_ca`), each over real TLS against a running
//! server, and what stays closed in each: the plain listener, every other
//! route on the TLS listener. Bad settings stop the start naming the keys.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::records::{World, get, registered_release_with, token};
use support::server::{Reply, Server, reply_of};

const DIGEST: &str = "sha256:5f2b0c7e9a1d4e8b3c6f0a2d9e7b1c4a8f3e6d0b2a5c9e1f4d7b0a3c6e9f2d5b";
const ADMISSION: &str = "/v1/integrations/kubernetes/admission";

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for `names` with `usage`: (cert PEM, key PEM).
    fn leaf(&self, names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An HTTPS agent that trusts this CA and nothing else; with a client
    /// certificate when `client` is given.
    fn agent(&self, client: Option<&(String, String)>) -> ureq::Agent {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        ureq::AgentBuilder::new()
            .tls_config(Arc::new(config))
            .timeout(Duration::from_secs(30))
            .build()
    }
}

/// A records world with tokens whose server also listens with TLS on a
/// certificate of `ca`; `kubernetes` is the `[integrations.kubernetes]`
/// table's body.
fn tls_world(ca: &Ca, kubernetes: &str) -> World {
    let world = World::new(support::records::Backend::Sqlite, "").expect("SQLite");
    let (c, k) = ca.leaf(
        &["127.0.0.1", "localhost"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cert, key) = (world.d.path("tls/tls.crt"), world.d.path("tls/tls.key"));
    std::fs::create_dir_all(world.d.path("tls")).unwrap();
    std::fs::write(&cert, c).unwrap();
    std::fs::write(&key, k).unwrap();
    std::fs::write(world.d.path("tls/ca.crt"), ca.cert.pem()).unwrap();
    let config = std::fs::read_to_string(world.d.config()).unwrap();
    std::fs::write(
        world.d.config(),
        format!(
            "listen_tls = \"127.0.0.1:0\"\n{config}\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n[integrations.kubernetes]\n{kubernetes}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    world
}

/// Starts the server; returns it with its TLS address.
fn start(world: &World) -> (Server, String) {
    let s = world.start();
    let mut addr = None;
    support::wait_until("the TLS listener", Duration::from_secs(30), || {
        addr = s
            .logs()
            .lines()
            .filter(|l| l.contains("TLS listener ready"))
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .and_then(|v| v["address"].as_str().map(str::to_string));
        addr.is_some()
    });
    (s, addr.unwrap())
}

/// An AdmissionReview of an apps/v1 Deployment governed by `deployment`.
fn review(uid: &str, deployment: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "credit-scoring",
            "namespace": "credit",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer"},
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "credit-scoring", "namespace": "credit",
                    "annotations": {"stagegate.dev/deployment": deployment}},
                "spec": {"selector": {"matchLabels": {"app": "credit-scoring"}},
                    "template": {"metadata": {"labels": {"app": "credit-scoring"}}, "spec": {
                        "containers": [{"name": "model", "image": format!("registry.example/credit-scoring@{DIGEST}")}]}}}
            },
            "dryRun": false
        }
    }))
    .unwrap()
}

/// A request over HTTPS with `agent`, any status (0: the connection
/// failed, its error in the body).
fn https(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
) -> Reply {
    let mut req = agent.request(method, url);
    if let Some(t) = bearer {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
        None => req.call(),
    };
    reply_of(result)
}

/// The actor the decision log recorded for an allowed review's answer.
fn logged_actor(s: &Server, reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    let id = v["response"]["auditAnnotations"]["decision-id"]
        .as_str()
        .unwrap_or_else(|| panic!("a logged decision: {v:#}"));
    let logged = get(s, "audit", &format!("/v1/decisions/{id}"));
    assert_eq!(logged.status, 200, "{}", logged.body);
    logged.json()["actor"].as_str().unwrap().to_string()
}

/// A deployment the review can be admitted for: it holds the review's
/// object's ref (admission governs by the ref; an annotation must name the
/// deployment holding it).
fn active_deployment(s: &Server) -> String {
    let release = registered_release_with(s, "2.3.0", json!({"artifact_digest": DIGEST}));
    let r = support::records::post(
        s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": support::records::plan(),
            "refs": {"kubernetes": "credit/credit-scoring"}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["deployment"]["id"].as_str().unwrap().to_string()
}

#[test]
fn without_require_token_only_the_tls_admission_route_answers_without_a_token() {
    let ca = Ca::new("apiserver test CA");
    let w = tls_world(&ca, "require_token = false");
    let (s, addr) = start(&w);
    let id = active_deployment(&s);
    let agent = ca.agent(None);
    let admission = format!("https://{addr}{ADMISSION}");

    // The API server of a managed cluster: no token, over TLS.
    let r = https(&agent, "POST", &admission, None, Some(&review("u-1", &id)));
    assert_eq!(
        logged_actor(&s, &r),
        "kubernetes-apiserver (unauthenticated)"
    );
    // A token, when sent, is still checked and names its holder.
    let r = https(
        &agent,
        "POST",
        &admission,
        Some(&token("gw")),
        Some(&review("u-2", &id)),
    );
    assert_eq!(logged_actor(&s, &r), "gw");
    let r = https(
        &agent,
        "POST",
        &admission,
        Some("not-a-token"),
        Some(&review("u-3", &id)),
    );
    assert_eq!(r.status, 401, "{}", r.body);

    // The same route on the plain listener still needs a token.
    let r = s.send(
        "POST",
        ADMISSION,
        None,
        Some("application/json"),
        Some(&review("u-4", &id)),
    );
    assert_eq!(r.status, 401, "{}", r.body);

    // Every other route on the TLS listener still needs a token.
    for (method, path, body) in [
        ("GET", format!("/v1/deployments/{id}"), None),
        ("GET", "/v1/bundles".to_string(), None),
        (
            "POST",
            "/v1/decisions/gate".to_string(),
            Some(serde_json::to_vec(&support::high_risk_gate()).unwrap()),
        ),
    ] {
        let url = format!("https://{addr}{path}");
        let r = https(&agent, method, &url, None, body.as_deref());
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        let r = https(&agent, method, &url, Some(&token("ops")), body.as_deref());
        assert_ne!(r.status, 401, "{method} {path}: {}", r.body);
    }
}

#[test]
fn unauthenticated_admission_reviews_have_their_own_rate_limit() {
    let ca = Ca::new("apiserver test CA");
    let w = tls_world(&ca, "require_token = false\nunauthenticated_per_second = 1");
    let (s, addr) = start(&w);
    let id = active_deployment(&s);
    let agent = ca.agent(None);
    let admission = format!("https://{addr}{ADMISSION}");
    let statuses: Vec<u16> = (0..20)
        .map(|i| {
            https(
                &agent,
                "POST",
                &admission,
                None,
                Some(&review(&format!("burst-{i}"), &id)),
            )
            .status
        })
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(statuses[0], 200, "{statuses:?}");
    let limited = https(
        &agent,
        "POST",
        &admission,
        None,
        Some(&review("one-more", &id)),
    );
    if limited.status == 429 {
        assert_eq!(limited.header("retry-after"), Some("1"));
        assert!(
            limited.body.contains("unauthenticated_per_second"),
            "{}",
            limited.body
        );
    }
    assert!(
        statuses.contains(&429),
        "20 calls at once against 1 per second: {statuses:?}"
    );
    // Token holders are not counted against it.
    let r = https(
        &agent,
        "POST",
        &admission,
        Some(&token("gw")),
        Some(&review("with-token", &id)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn with_client_ca_the_tls_admission_route_takes_a_client_certificate_instead_of_a_token() {
    let ca = Ca::new("apiserver test CA");
    let w = tls_world(&ca, "");
    // The CA of the API server's client certificate: here the same CA.
    let config = std::fs::read_to_string(w.d.config()).unwrap();
    std::fs::write(
        w.d.config(),
        format!(
            "{config}client_ca = \"{}\"\n",
            w.d.path("tls/ca.crt").display()
        ),
    )
    .unwrap();
    let (s, addr) = start(&w);
    let id = active_deployment(&s);
    let admission = format!("https://{addr}{ADMISSION}");
    let apiserver = ca.leaf(
        &["kube-apiserver"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let with_cert = ca.agent(Some(&apiserver));
    let without = ca.agent(None);

    let r = https(
        &with_cert,
        "POST",
        &admission,
        None,
        Some(&review("c-1", &id)),
    );
    let actor = logged_actor(&s, &r);
    assert!(
        actor.starts_with("kubernetes-apiserver (client certificate sha256:"),
        "{actor}"
    );
    // No certificate, no token: refused.
    let r = https(
        &without,
        "POST",
        &admission,
        None,
        Some(&review("c-2", &id)),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("client_ca"), "{}", r.body);
    // The certificate opens that route only.
    let r = https(
        &with_cert,
        "GET",
        &format!("https://{addr}/v1/deployments/{id}"),
        None,
        None,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // A certificate of another CA fails the handshake.
    let stranger = Ca::new("someone else").leaf(
        &["kube-apiserver"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let r = https(
        &ca.agent(Some(&stranger)),
        "POST",
        &admission,
        None,
        Some(&review("c-3", &id)),
    );
    assert_eq!(r.status, 0, "{}", r.body);
    // The plain listener still needs a token.
    let r = s.send(
        "POST",
        ADMISSION,
        None,
        Some("application/json"),
        Some(&review("c-4", &id)),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn by_default_the_tls_admission_route_needs_a_token() {
    let ca = Ca::new("apiserver test CA");
    let w = tls_world(&ca, "");
    let (s, addr) = start(&w);
    let id = active_deployment(&s);
    let agent = ca.agent(None);
    let admission = format!("https://{addr}{ADMISSION}");
    let r = https(&agent, "POST", &admission, None, Some(&review("d-1", &id)));
    assert_eq!(r.status, 401, "{}", r.body);
    let r = https(
        &agent,
        "POST",
        &admission,
        Some(&token("gw")),
        Some(&review("d-2", &id)),
    );
    assert_eq!(logged_actor(&s, &r), "gw");
}

#[test]
fn tokenless_admission_without_listen_tls_or_with_a_bad_client_ca_stops_the_start() {
    let w = World::new(support::records::Backend::Sqlite, "").expect("SQLite");
    let config = std::fs::read_to_string(w.d.config()).unwrap();
    std::fs::write(
        w.d.config(),
        format!("{config}\n[integrations.kubernetes]\nrequire_token = false\n"),
    )
    .unwrap();
    let e = Server::try_start(w.d.dir.path(), Some(&w.d.config()))
        .err()
        .expect("refused");
    assert!(
        e.contains("integrations.kubernetes.require_token = false") && e.contains("listen_tls"),
        "{e}"
    );

    let ca = Ca::new("apiserver test CA");
    let w = tls_world(&ca, "");
    let config = std::fs::read_to_string(w.d.config()).unwrap();
    let missing = w.d.path("tls/no-such-ca.crt");
    std::fs::write(
        w.d.config(),
        format!("{config}client_ca = \"{}\"\n", missing.display()),
    )
    .unwrap();
    let e = Server::try_start(w.d.dir.path(), Some(&w.d.config()))
        .err()
        .expect("refused");
    assert!(
        e.contains("integrations.kubernetes.client_ca") && e.contains("no-such-ca.crt"),
        "{e}"
    );
    std::fs::write(&missing, "not PEM").unwrap();
    let e = Server::try_start(w.d.dir.path(), Some(&w.d.config()))
        .err()
        .expect("refused");
    assert!(
        e.contains("integrations.kubernetes.client_ca") && e.contains("no CERTIFICATE"),
        "{e}"
    );
}

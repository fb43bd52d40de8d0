//! A real nginx in front of a tiny upstream asks stagegate before every
//! request (`auth_request`, the configuration of examples/gateways/nginx.conf):
//! 2,000 distinct callers at the pilot's 5 %, after promotion to regional
//! (25 %), and after the automatic rollback, on the scenario's records;
//! and callers who try to choose or learn their bucket with headers of
//! their own, which the example must neither use nor answer.
//!
//! nginx is the Debian package (`just test-deps` installs it); without it
//! the test fails under `CI` and is skipped (and listed) elsewhere. nginx runs as the current user
//! with a temporary prefix and `daemon off`, as a child of the test.

use crate::support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::records::{Backend, World, deployed_with_ref, observe, post, token};

const SUBJECTS: usize = 2_000;
const REF: &str = "serving/credit-scoring";
const PASSWORD: &str = "pw";
/// How often the route table is rebuilt from the records (the default
/// `[integrations.authz] refresh_ms`).
const REFRESH_MS: u64 = 250;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx as a child process; stopped (and waited for) on drop.
struct Nginx {
    child: Child,
    front: u16,
    prefix: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM: the master stops its workers, then exits. SIGKILL would
    /// leave the workers running, orphaned, with the test's ports open.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The shipped example configuration with this test's ports, token and
    /// paths: the front server on `front`, the new release and the stable
    /// one as two tiny upstream servers answering `new` and `stable`.
    fn start(binary: &Path, stagegate: &str, gateway_token: &str) -> Nginx {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        for d in ["logs", "tmp"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        // The callers nginx authenticates (the `{PLAIN}` scheme nginx reads
        // for tests), each with the password [`PASSWORD`].
        let users: String = (0..SUBJECTS)
            .map(|i| format!("user-{i:05}:{{PLAIN}}{PASSWORD}\n"))
            .collect();
        let htpasswd = p.join("users.htpasswd");
        std::fs::write(&htpasswd, users).unwrap();
        let example =
            std::fs::read_to_string(support::root().join("examples/gateways/nginx.conf")).unwrap();
        let (front, new, stable) = (free_port(), free_port(), free_port());
        // Running as root, nginx would hand its workers to `nobody`.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let config = example
            .replace("127.0.0.1:8080", stagegate)
            .replace("listen 80;", &format!("listen 127.0.0.1:{front};"))
            .replace("127.0.0.1:9001", &format!("127.0.0.1:{new}"))
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{stable}"))
            .replace("GATEWAY_TOKEN", gateway_token)
            .replace(
                "/etc/nginx/model-users.htpasswd",
                &htpasswd.display().to_string(),
            );
        assert_ne!(config, example, "the example's placeholders changed");
        let test_config = format!(
            "{user}daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
             # the two releases\n  server {{ listen 127.0.0.1:{new}; location / {{ return 200 \"new\\n\"; }} }}\n\
             server {{ listen 127.0.0.1:{stable}; location / {{ return 200 \"stable\\n\"; }} }}\n\
             {config}\n}}\n",
            user = if is_root { "user root;\n" } else { "" },
            p = p.display(),
        );
        std::fs::write(p.join("nginx.conf"), &test_config).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .arg("-e")
            .arg(p.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        let nginx = Nginx {
            child,
            front,
            prefix,
        };
        support::wait_until("nginx to listen", support::HANG, || {
            std::net::TcpStream::connect(("127.0.0.1", front)).is_ok()
        });
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("logs/error.log")).unwrap_or_default()
    }
}

/// What one request through nginx got: did it reach the new release, the
/// stage header nginx passed on, and every response header.
struct Reply {
    new: bool,
    stage: String,
    headers: Vec<(String, String)>,
}

/// One request through nginx as the authenticated caller `subject`, who
/// also sends `extra` headers of its own.
fn request(agent: &ureq::Agent, nginx: &Nginx, subject: &str, extra: &[(&str, &str)]) -> Reply {
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{subject}:{PASSWORD}"),
    );
    let mut req = agent
        .get(&format!("http://127.0.0.1:{}/v1/predict", nginx.front))
        .set("Authorization", &format!("Basic {basic}"));
    for (k, v) in extra {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(r) => {
            let headers = r
                .headers_names()
                .into_iter()
                .map(|n| {
                    let v = r.header(&n).unwrap_or("").to_string();
                    (n.to_ascii_lowercase(), v)
                })
                .collect();
            let stage = r.header("x-stagegate-stage").unwrap_or("").to_string();
            let body = r.into_string().unwrap_or_default();
            let new = match body.trim() {
                "new" => true,
                "stable" => false,
                other => panic!("unexpected answer through nginx: {other}\n{}", nginx.log()),
            };
            Reply {
                new,
                stage,
                headers,
            }
        }
        Err(e) => panic!("request through nginx failed: {e}\n{}", nginx.log()),
    }
}

/// One request through nginx as caller `subject`: did it reach the new
/// release? And the stage header nginx passed on.
fn ask(agent: &ureq::Agent, nginx: &Nginx, subject: &str) -> (bool, String) {
    let r = request(agent, nginx, subject, &[]);
    (r.new, r.stage)
}

fn admitted(agent: &ureq::Agent, nginx: &Nginx) -> Vec<bool> {
    (0..SUBJECTS)
        .map(|i| ask(agent, nginx, &format!("user-{i:05}")).0)
        .collect()
}

fn share(a: &[bool]) -> f64 {
    a.iter().filter(|x| **x).count() as f64 * 100.0 / a.len() as f64
}

#[test]
fn nginx_admits_the_plans_share_keeps_admitted_callers_and_stops_admitting_soon_after_a_rollback() {
    if !support::require_tool("nginx") {
        return;
    }
    let binary = support::tools::nginx_path().expect("require_tool found nginx");
    let world = World::new(Backend::Sqlite, "").unwrap();
    let s = world.start();
    // The scenario's release, authorised, deployed under its plan with the
    // ref the gateway names it by.
    let deployment = deployed_with_ref(&s, REF);
    let d = deployment["id"].as_str().unwrap().to_string();
    assert_eq!(deployment["traffic_percent"], 5.0);

    let nginx = Nginx::start(&binary, &s.addr, &token("gw"));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();

    // The route table follows the creation.
    support::wait_until("nginx to see the pilot", support::HANG, || {
        ask(&agent, &nginx, "user-00000").1 == "pilot"
    });

    // Pilot, 5 %.
    let pilot = admitted(&agent, &nginx);
    let pilot_share = share(&pilot);
    println!("pilot (5%): {pilot_share:.2}% of {SUBJECTS} callers admitted through nginx");
    assert!(
        (3.5..=6.5).contains(&pilot_share),
        "pilot share {pilot_share}%"
    );
    assert_eq!(ask(&agent, &nginx, "user-00000").1, "pilot");

    // Healthy, reviewed, authorised: promoted to regional (25 %).
    assert_eq!(
        observe(&s, &d, 0.01, 20_000).json()["decision"]["outcome"],
        "healthy"
    );
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
    let promoted = Instant::now();
    support::wait_until("nginx to see the regional stage", support::HANG, || {
        ask(&agent, &nginx, "user-00000").1 == "regional"
    });
    println!(
        "promotion visible through nginx after {} ms",
        promoted.elapsed().as_millis()
    );
    let regional = admitted(&agent, &nginx);
    let regional_share = share(&regional);
    println!("regional (25%): {regional_share:.2}% of {SUBJECTS} callers admitted through nginx");
    assert!(
        (22.0..=28.0).contains(&regional_share),
        "regional share {regional_share}%"
    );
    let dropped: Vec<usize> = (0..SUBJECTS)
        .filter(|i| pilot[*i] && !regional[*i])
        .collect();
    assert!(
        dropped.is_empty(),
        "callers admitted at the pilot but refused at regional: {dropped:?}"
    );

    // The error rate breaches the rollback trigger: the deployment rolls
    // back by itself, and nginx stops sending anyone to it.
    let watched: Vec<String> = (0..SUBJECTS)
        .filter(|i| regional[*i])
        .map(|i| format!("user-{i:05}"))
        .collect();
    let before = Instant::now();
    let v = observe(&s, &d, 0.08, 20_000).json();
    let answered = Instant::now();
    assert_eq!(v["decision"]["outcome"], "rollback", "{v:#}");
    assert_eq!(v["deployment"]["status"], "rolled_back");
    // Poll admitted callers until none gets through.
    let mut i = 0;
    let stopped = loop {
        if !ask(&agent, &nginx, &watched[i % watched.len()]).0 {
            // One refused caller: check a round of the others.
            if watched.iter().take(50).all(|w| !ask(&agent, &nginx, w).0) {
                break Instant::now();
            }
        }
        i += 1;
        assert!(
            before.elapsed() < support::HANG,
            "nginx still admits callers {:?} after the rollback",
            support::HANG
        );
    };
    let delay = stopped.duration_since(before);
    let write = answered.duration_since(before);
    let since_answer = stopped.saturating_duration_since(answered);
    println!(
        "rollback: no caller admitted through nginx {} ms after the observation was sent ({} ms after its answer)",
        delay.as_millis(),
        since_answer.as_millis()
    );
    // The replica that commits a transition rebuilds its route table at
    // once, and every `refresh_ms` anyway: nginx stops admitting within a
    // few refreshes plus a few of the rollback's own round trips (a
    // decision and a write: how long a query takes on this machine right
    // now, measured side by side).
    let bound = Duration::from_millis(4 * REFRESH_MS) + write * 4;
    assert!(
        since_answer <= bound,
        "rollback took {since_answer:?} after its answer to show through nginx (round trip {write:?}, refresh {REFRESH_MS} ms)"
    );
    let after = admitted(&agent, &nginx);
    assert_eq!(
        share(&after),
        0.0,
        "callers still admitted after the rollback"
    );
    let metrics = s.get("/metrics", None).body;
    assert!(
        metrics.contains(&format!(
            "stagegate_authz_total{{deployment=\"{d}\",result=\"in\"}}"
        )),
        "{metrics}"
    );
}

/// Asks stagegate directly (as the gateway) whether `subject` is in.
fn stagegate_admits(s: &support::server::Server, subject: &str) -> bool {
    let r = support::server::Request::get(&s.url("/v1/integrations/authz"))
        .bearer(Some(&token("gw")))
        .headers(&[("X-Stagegate-Ref", REF), ("X-Stagegate-Subject", subject)])
        .send();
    match r.status {
        200 => true,
        403 => false,
        other => panic!("authz answered {other}: {}", r.body),
    }
}

#[test]
fn through_nginx_a_client_cannot_choose_or_learn_its_bucket_and_a_refused_gateway_token_serves_stable()
 {
    if !support::require_tool("nginx") {
        return;
    }
    let binary = support::tools::nginx_path().expect("require_tool found nginx");
    let world = World::new(Backend::Sqlite, "").unwrap();
    let s = world.start();
    deployed_with_ref(&s, REF);
    // A name stagegate admits at the pilot's 5 %, and an authenticated
    // caller it does not.
    let inside = (0..SUBJECTS * 10)
        .map(|i| format!("chosen-{i}"))
        .find(|n| stagegate_admits(&s, n))
        .expect("some name lands in the pilot");
    let outside = (0..SUBJECTS)
        .map(|i| format!("user-{i:05}"))
        .find(|n| !stagegate_admits(&s, n))
        .expect("some caller is outside the pilot");
    let admitted_user = (0..SUBJECTS)
        .map(|i| format!("user-{i:05}"))
        .find(|n| stagegate_admits(&s, n))
        .expect("some caller is inside the pilot");

    let nginx = Nginx::start(&binary, &s.addr, &token("gw"));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    support::wait_until("nginx to see the pilot", support::HANG, || {
        ask(&agent, &nginx, &admitted_user).1 == "pilot"
    });
    // The caller outside the pilot names the admitted subject in every
    // header a careless configuration would read: still stable.
    let choose = [
        ("X-User", inside.as_str()),
        ("X-Stagegate-Subject", inside.as_str()),
    ];
    let r = request(&agent, &nginx, &outside, &choose);
    assert!(
        !r.new,
        "a client chose its bucket with its own headers ({outside} sent {inside})"
    );
    // Neither answer, new or stable, tells the client its bucket or the
    // decision's detail, whatever it sends.
    let probe = [("X-Stagegate-Decision", "in: bucket 0 < 500")];
    let admitted = request(&agent, &nginx, &admitted_user, &probe);
    assert!(
        admitted.new,
        "the admitted caller still reaches the new release"
    );
    let refused = request(&agent, &nginx, &outside, &probe);
    assert!(!refused.new);
    for reply in [&r, &admitted, &refused] {
        for (name, value) in &reply.headers {
            assert_ne!(
                name, "x-stagegate-decision",
                "decision detail echoed: {value}"
            );
            assert!(
                !value.contains("bucket"),
                "a response header carries the bucket: {name}: {value}"
            );
        }
    }
    // No other client header reaches stagegate either: naming another
    // deployment changes nothing.
    let r = request(
        &agent,
        &nginx,
        &admitted_user,
        &[("X-Stagegate-Deployment", "another")],
    );
    assert!(r.new, "a client's X-Stagegate-Deployment reached stagegate");
    // A caller nginx did not authenticate reaches no release.
    let anonymous = agent
        .get(&format!("http://127.0.0.1:{}/v1/predict", nginx.front))
        .set("X-User", &inside)
        .call();
    match anonymous {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 401),
        other => panic!("an anonymous caller got through: {other:?}"),
    }
    drop(nginx);

    // stagegate refuses the gateway's token (rotated, revoked): 401, and
    // every caller gets the stable release instead of an error.
    let nginx = Nginx::start(&binary, &s.addr, "tok-rotated-away");
    let r = request(&agent, &nginx, &admitted_user, &[]);
    assert!(!r.new, "a refused token admitted a caller");
}

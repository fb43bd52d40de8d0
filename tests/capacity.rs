//! Capacity that one client cannot take: with tokens configured, 300
//! connections that each send the headers and one byte of a 65,000-byte
//! body and then wait must not make `/healthz`, the gateway exposure
//! check, admission or an authenticated gate answer anything but 200.
//! Latency during the flood is compared only as a ratio to the same call
//! measured before it in the same test, never against a fixed time.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::records::{Backend, World, deploy, registered_release, token};
use support::server::{Reply, Server, reply_of};

const FLOOD: usize = 300;
const DECLARED: usize = 65_000;
/// How many times each probe is called before and during the flood.
const SAMPLES: usize = 15;
/// Generous: the median during the flood may be this many times the
/// median before it (the machine is shared; the point is "answers", not
/// "answers fast").
const RATIO: f64 = 40.0;

/// Raises this process's open-file limit to its hard limit: the flood
/// holds 300 sockets here while the probes open more.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn world() -> (World, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let w = World::new(
        Backend::Sqlite,
        &format!(
            "\n[integrations.authz]\nkey_file = \"{}\"\n",
            keys.path().join("authz.key").display()
        ),
    )
    .unwrap();
    (w, keys)
}

fn call(
    s: &Server,
    method: &str,
    path: &str,
    who: Option<&str>,
    headers: &[(&str, String)],
    body: Option<&Value>,
) -> Reply {
    // A new connection per call, as a kubelet probe or a gateway after an
    // idle period makes it.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let mut req = agent.request(method, &s.url(path));
    if let Some(who) = who {
        req = req.set("Authorization", &format!("Bearer {}", token(who)));
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    reply_of(match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_bytes(&serde_json::to_vec(b).unwrap()),
        None => req.call(),
    })
}

/// The four calls that must keep working, each with what it sends.
struct Probes {
    deployment: String,
    subject: String,
}

impl Probes {
    fn names() -> [&'static str; 4] {
        ["healthz", "authz", "admission", "gate"]
    }

    fn run(&self, s: &Server, which: &str) -> Reply {
        match which {
            "healthz" => call(s, "GET", "/healthz", None, &[], None),
            "authz" => call(
                s,
                "GET",
                "/v1/integrations/authz",
                Some("gw"),
                &[
                    ("X-Stagegate-Deployment", self.deployment.clone()),
                    ("X-Stagegate-Subject", self.subject.clone()),
                ],
                None,
            ),
            "admission" => call(
                s,
                "POST",
                "/v1/integrations/kubernetes/admission",
                Some("gw"),
                &[],
                Some(&admission_review()),
            ),
            "gate" => call(
                s,
                "POST",
                "/v1/decisions/gate",
                Some("gw"),
                &[],
                Some(&support::high_risk_gate()),
            ),
            other => unreachable!("{other}"),
        }
    }

    /// The median duration of `SAMPLES` calls, each asserted to be 200.
    fn median(&self, s: &Server, which: &str, phase: &str) -> Duration {
        let mut took = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let start = Instant::now();
            let r = self.run(s, which);
            took.push(start.elapsed());
            assert_eq!(
                r.status, 200,
                "{which} call {i} {phase} the flood answered {}: {}",
                r.status, r.body
            );
        }
        took.sort();
        took[SAMPLES / 2]
    }
}

/// An AdmissionReview for an object that does not opt in: allowed, 200.
fn admission_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "operation": "CREATE",
            "namespace": "default",
            "userInfo": {"username": "someone"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        }
    })
}

/// Opens one connection that sends the headers and one body byte of a
/// request declaring `DECLARED` bytes, then waits.
fn half_sent(addr: &str, path: &str, authorization: Option<&str>) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    let auth = authorization
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {DECLARED}\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).ok()?;
    Some(s)
}

/// Whether the flooded service has tokens configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tokens,
    /// Open development mode: no `[[tokens]]`, loopback only.
    Open,
}

/// Rewrites the configuration without its `[[tokens]]` tables: open mode.
fn without_tokens(w: &World) {
    let config = std::fs::read_to_string(w.d.config()).unwrap();
    let mut out = String::new();
    let mut in_tokens = false;
    for line in config.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_tokens = t.starts_with("[[tokens]]");
        }
        if !in_tokens {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.contains("[[tokens]]"));
    std::fs::write(w.d.config(), out).unwrap();
}

fn flood_holds(path: &str) {
    flood_holds_in(path, Mode::Tokens)
}

fn flood_holds_in(path: &str, mode: Mode) {
    raise_fd_limit();
    let (w, _keys) = world();
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let deployment = deploy(&s, &release);
    // The records are made with tokens (separation of duties needs
    // named callers); the flooded service then runs without them.
    let s = if mode == Mode::Open {
        s.terminate();
        without_tokens(&w);
        w.start()
    } else {
        s
    };
    // A subject the pilot admits (5 % of subjects), so the exposure check
    // answers 200.
    let mut subject = None;
    support::wait_until(
        "an admitted subject in the route table",
        Duration::from_secs(5),
        || {
            for i in 0..400 {
                let candidate = format!("user-{i}");
                let r = call(
                    &s,
                    "GET",
                    "/v1/integrations/authz",
                    Some("gw"),
                    &[
                        ("X-Stagegate-Deployment", deployment.clone()),
                        ("X-Stagegate-Subject", candidate.clone()),
                    ],
                    None,
                );
                if r.status == 200 {
                    subject = Some(candidate);
                    return true;
                }
            }
            false
        },
    );
    let probes = Probes {
        deployment,
        subject: subject.unwrap(),
    };
    let before: Vec<Duration> = Probes::names()
        .iter()
        .map(|p| probes.median(&s, p, "before"))
        .collect();

    let flood: Vec<TcpStream> = (0..FLOOD)
        .filter_map(|_| half_sent(&s.addr, path, None))
        .collect();
    assert!(
        flood.len() >= FLOOD * 9 / 10,
        "only {} of {FLOOD} flood connections opened",
        flood.len()
    );
    // Let the server accept and start every one of them.
    std::thread::sleep(Duration::from_millis(300));

    let during: Vec<Duration> = Probes::names()
        .iter()
        .map(|p| probes.median(&s, p, "during"))
        .collect();
    for ((name, b), d) in Probes::names().iter().zip(&before).zip(&during) {
        let ratio = d.as_secs_f64() / b.as_secs_f64().max(1e-6);
        eprintln!("{name}: median {b:?} before, {d:?} during the flood on {path} ({ratio:.1}x)");
        assert!(
            ratio <= RATIO,
            "{name}: {ratio:.1}x slower during the flood ({b:?} -> {d:?})"
        );
    }

    // What each flooding connection got: an answer or a close, never an
    // open-ended wait. Each is read with a bounded timeout.
    let mut answered = std::collections::BTreeMap::<String, usize>::new();
    for mut c in flood {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 64];
        let what = match c.read(&mut buf) {
            Ok(0) => "closed".to_string(),
            Ok(n) => String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            Err(_) => "waiting".to_string(),
        };
        *answered.entry(what).or_default() += 1;
    }
    eprintln!("flood connections on {path}: {answered:?}");
}

#[test]
fn a_flood_of_half_sent_flagger_hooks_leaves_health_exposure_admission_and_gate_answering() {
    flood_holds("/v1/integrations/flagger/rollout");
}

/// The first reproduction of issue 23, as it was reported: open mode.
#[test]
fn in_open_mode_a_flood_of_half_sent_flagger_hooks_leaves_health_exposure_admission_and_gate_answering()
 {
    flood_holds_in("/v1/integrations/flagger/rollout", Mode::Open);
}

#[test]
fn a_flood_of_half_sent_unauthenticated_admissions_leaves_every_probe_answering() {
    flood_holds("/v1/integrations/kubernetes/admission");
}

/// A client that never finishes its headers is closed by the header read
/// deadline, and one that never finishes its body by the body deadline:
/// neither holds its connection for good.
#[test]
fn slow_headers_and_slow_bodies_are_closed() {
    let (w, _keys) = world();
    std::fs::write(
        w.d.config(),
        std::fs::read_to_string(w.d.config()).unwrap()
            + "\n[capacity]\nheader_timeout_ms = 500\nunauthenticated_timeout_ms = 500\n",
    )
    .unwrap();
    let s = w.start();
    let mut slow_head = TcpStream::connect(&s.addr).unwrap();
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = half_sent(&s.addr, "/v1/integrations/flagger/rollout", None).unwrap();
    for (name, c) in [("headers", &mut slow_head), ("body", &mut slow_body)] {
        // Bounded: 20 s of reading, far beyond the 500 ms deadlines.
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "slow {name}: still open after 20 s ({e}); read so far: {}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        eprintln!(
            "slow {name}: closed after {}",
            String::from_utf8_lossy(&out)
                .lines()
                .next()
                .unwrap_or("nothing")
        );
    }
    let _ = token("gw");
}

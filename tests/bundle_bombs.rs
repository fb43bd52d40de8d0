//! Archive memory bombs: small bundle files that declare gigabytes. Every
//! way a bundle reaches the service (`stagegate verify`, an upload, a
//! watched directory) refuses each of them with an error naming the entry
//! and the limit, the service keeps deciding meanwhile, and no process's
//! peak resident memory reaches 256 MiB.

use crate::support;

use std::io::Write;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use support::high_risk_gate;
use support::server::{Deployment, Server};

const NAME: &str = "iso42001-reference";
/// The most any stagegate process may hold at its peak, in KiB.
const PEAK_LIMIT_KIB: u64 = 256 * 1024;
const GIB: u64 = 1 << 30;

/// A raw tar header: what an attacker writes, not what `tar::Builder` would.
fn header(name: &str, kind: u8, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::new(kind));
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

/// Writes `size` bytes of data (padded to a block), compressing to almost
/// nothing.
fn filler(gz: &mut GzEncoder<Vec<u8>>, size: u64) {
    let chunk = vec![b'a'; 1 << 20];
    let mut left = size.div_ceil(512) * 512;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        gz.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
}

/// An entry of type `kind` declaring (and holding) `size` bytes, then a
/// small regular member and the end of the archive.
fn bomb(first: &str, kind: u8, size: u64) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(header(first, kind, size).as_bytes()).unwrap();
    filler(&mut gz, size);
    let m = header("manifest.json", b'0', 2);
    gz.write_all(m.as_bytes()).unwrap();
    filler(&mut gz, 2);
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// 100 000 empty members.
fn many_entries() -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    for i in 0..100_000 {
        gz.write_all(header(&format!("m{i}.json"), b'0', 0).as_bytes())
            .unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// Each bomb, and what the refusal must say.
fn bombs() -> &'static [(&'static str, Vec<u8>, &'static str)] {
    static B: OnceLock<Vec<(&'static str, Vec<u8>, &'static str)>> = OnceLock::new();
    B.get_or_init(|| {
        vec![
            (
                "long-name",
                bomb("././@LongLink", b'L', GIB),
                "entry #1 is a GNU long-name entry (type 'L') declaring 1073741824 bytes",
            ),
            (
                "pax",
                bomb("./PaxHeaders/policy.wasm", b'x', GIB),
                "entry #1 is a PAX extended header (type 'x') declaring 1073741824 bytes",
            ),
            (
                "oversized-member",
                bomb("policy.wasm", b'0', GIB),
                "member 'policy.wasm' is 1073741824 bytes, over the 33554432-byte limit",
            ),
            (
                "many-entries",
                many_entries(),
                "entry #33 ('m32.json') is past the limit of 32 members",
            ),
        ]
    })
}

/// Runs `stagegate ARGS` and returns its exit code, stderr and peak
/// resident memory in KiB (from `wait4`'s resource usage). Linux carries
/// the spawning process's high-water mark across `exec` into the child's
/// `ru_maxrss`, so the figure is an upper bound: at least this test
/// process's own peak at spawn time, which keeps the assertion sound.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4 below, which also reports its resource usage"
)]
fn run_measured(args: &[&str]) -> (i32, String, u64) {
    use std::io::Read;
    let mut child = std::process::Command::new(support::bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child.id()` is our own unreaped child; `status` and `usage`
    // are valid for writes for the duration of the call.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // Linux reports ru_maxrss in KiB.
    (code, reader.join().unwrap(), usage.ru_maxrss as u64)
}

/// Peak resident memory of a running server, in KiB.
fn peak_kib(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn verify_refuses_every_bomb_within_256_mib() {
    let b = support::SignedBundle::new();
    for (what, bytes, says) in bombs() {
        let path = b.path(&format!("{what}.bundle"));
        std::fs::write(&path, bytes).unwrap();
        let (code, stderr, peak) =
            run_measured(&["verify", path.to_str().unwrap(), "--trust", &b.arg("trust")]);
        assert_eq!(code, 1, "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(peak < PEAK_LIMIT_KIB, "{what}: verify peaked at {peak} KiB");
        eprintln!("{what}: verify peak RSS at most {peak} KiB");
    }
}

/// Sends decisions until stopped; returns (answered, failed).
fn decide_meanwhile(s: &Server, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    let url = s.url("/v1/decisions/gate");
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) {
            let r =
                support::server::send(&url, "POST", None, Some("application/json"), Some(&body));
            if r.status == 200 {
                answered += 1;
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("decision failed during the bombs: {} {}", r.status, r.body);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (answered, failed.load(Ordering::Relaxed))
    })
}

#[test]
fn uploads_and_watched_directories_refuse_every_bomb_while_decisions_continue() {
    let d = Deployment::new(&format!(
        "[limits]\nwatch_interval_ms = 100\n\
         [[bundles]]\nname = \"{NAME}\"\nfile = \"ref.bundle\"\ndefault = true\n\
         [[bundles]]\nname = \"watched\"\ndir = \"incoming\"\n"
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    std::fs::create_dir_all(d.path("incoming")).unwrap();
    let s = d.start();
    let stop = Arc::new(AtomicBool::new(false));
    let load = decide_meanwhile(&s, stop.clone());

    for (what, bytes, says) in bombs() {
        let r = s.put_bundle(NAME, None, bytes, false);
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        assert!(r.body.contains(says), "{what}: {}", r.body);
    }
    for (what, bytes, says) in bombs() {
        let path = d.path(&format!("incoming/{what}.bundle"));
        std::fs::write(&path, bytes).unwrap();
        // The watcher names the path as configured (relative to its cwd).
        let origin = format!("incoming/{what}.bundle");
        support::wait_until(
            &format!("the watched {what} bomb's rejection"),
            support::HANG,
            || {
                let st = s.get("/v1/bundles/watched", None);
                assert_eq!(st.status, 200, "the server stopped answering: {}", s.logs());
                let st = st.json();
                st["history"].as_array().is_some_and(|h| {
                    h.iter().any(|e| {
                        e["event"] == "rejected"
                            && e["origin"]["path"]
                                .as_str()
                                .is_some_and(|p| p.ends_with(&origin))
                            && e["reason"].as_str().is_some_and(|r| r.contains(says))
                    })
                })
            },
        );
    }

    stop.store(true, Ordering::Relaxed);
    let (answered, failed) = load.join().unwrap();
    assert_eq!(failed, 0, "decisions failed while bombs were refused");
    assert!(answered > 10, "only {answered} decisions were answered");
    let st = s.get(&format!("/v1/bundles/{NAME}"), None).json();
    assert_eq!(st["active"]["version"], "1.0.0");
    let peak = peak_kib(&s);
    eprintln!("server peak RSS {peak} KiB");
    assert!(peak < PEAK_LIMIT_KIB, "the server peaked at {peak} KiB");
}

//! Shared helpers for the end-to-end tests: where things are, the bundles
//! built once per test binary, running the real `stagegate` binary, the
//! gate for tools beyond Rust ([`require_tool`]) and the tests run on both
//! records backends ([`on_both_backends!`]).

#![allow(dead_code, unused_macros, unused_imports)]

pub mod load;
pub mod oci_registry;
pub mod receiver;
pub mod records;
pub mod server;
pub mod sets;
pub mod tools;

pub use tools::{require, require_tool};

/// Declares `sqlite::NAME` and `postgres::NAME` tests for each
/// `fn NAME(backend: Backend)` of the calling module. The PostgreSQL
/// variants pass through [`require_tool`]`("postgresql")` (in
/// [`records::World::new`]): skipped and listed without a server,
/// failing under CI.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::support::records::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::support::records::Backend::Postgres) })*
        }
    };
}
pub(crate) use on_both_backends;

/// The ceiling of a wait for something that must happen: long enough that
/// only a hang reaches it, however loaded the machine. How soon things
/// happen is never asserted against the clock; where it matters, against
/// a baseline measured in the same test.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(60);

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use stagegate::bundle::Bundle;
use stagegate::bundle::source::PolicySource;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The `stagegate` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stagegate"))
}

/// The reference bundle, built (unsigned) once per test binary.
pub fn reference_bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        PolicySource::open(&root().join("policies/iso42001"))
            .and_then(|s| s.bundle())
            .expect("building the reference bundle")
    })
}

/// The hostile fixture bundle, built (unsigned) once per test binary.
pub fn hostile_bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        PolicySource::open(&root().join("guest/fixtures/hostile"))
            .and_then(|s| s.bundle())
            .expect("building the hostile fixture bundle")
    })
}

/// The ACME organisation-rules fixture bundle (a policy-set member),
/// built (unsigned) once per test binary.
pub fn acme_rules_bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        PolicySource::open(&root().join("guest/fixtures/acme-rules"))
            .and_then(|s| s.bundle())
            .expect("building the acme-rules fixture bundle")
    })
}

/// The ACME Python policy (policies/acme-python), built with
/// componentize-py (unsigned) once per test binary.
pub fn acme_python_bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        PolicySource::open(&root().join("policies/acme-python"))
            .and_then(|s| s.bundle())
            .expect("building policies/acme-python (needs `pip install componentize-py==0.25.1`)")
    })
}

/// The complete high-risk gate request from `examples/`.
pub fn high_risk_gate() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("examples/gate-high-risk.json"))
        .expect("examples/gate-high-risk.json");
    serde_json::from_str(&text).expect("example is JSON")
}

/// Runs `stagegate ARGS` in `cwd` with `stdin`, returning its output.
pub fn run(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stagegate");
    if let Some(input) = stdin {
        // A command that refuses its arguments exits before it reads its
        // input: a broken pipe here is that refusal, judged by its output.
        match child.stdin.take().expect("stdin").write_all(input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("writing stdin: {e}"),
        }
    }
    child.wait_with_output().expect("waiting for stagegate")
}

/// Output as text, for assertions and failure messages.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A temporary directory holding a signed reference bundle
/// (`ref.bundle`), its signing key (`keys/dev`) and a trust store
/// (`trust/dev.pub`).
pub struct SignedBundle {
    pub dir: tempfile::TempDir,
}

impl SignedBundle {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bundle = reference_bundle().clone();
        let key = dir.path().join("keys/dev");
        let (secret, public) = stagegate::bundle::keys::generate(&key).expect("keygen");
        std::fs::create_dir_all(dir.path().join("trust")).expect("trust dir");
        std::fs::copy(public, dir.path().join("trust/dev.pub")).expect("copy key");
        bundle.sign(&secret);
        bundle
            .write(&dir.path().join("ref.bundle"))
            .expect("write bundle");
        SignedBundle { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn arg(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after
/// `timeout`. Returns how long it took.
pub fn wait_until(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// The documents of a YAML file as JSON (PyYAML: Debian's python3-yaml).
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys, json, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)")
        .arg(path)
        .output()
        .expect("running python3 (with PyYAML, Debian's python3-yaml) to read the example manifests");
    assert!(
        out.status.success(),
        "reading {} needs python3 with PyYAML (python3-yaml): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

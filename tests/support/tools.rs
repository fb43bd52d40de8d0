//! The tools some tests need beyond Rust (nginx, a registry, Chromium,
//! PostgreSQL, Python packages...), behind one gate.
//!
//! [`require_tool`] says whether a tool is here. When it is not, the test
//! is skipped — it prints `skipped: <test> needs <tool> (just test-deps
//! installs it)` and appends that line to the file named by
//! `STAGEGATE_SKIPPED`, which `just test` lists at the end of the run — so
//! a run that skipped nginx never looks like a run that tested it. Under
//! `CI` (set and neither empty, `0` nor `false`) a missing tool fails the
//! test instead: CI installs every tool (`just test-deps`), so a missing
//! one there is a broken machine, not a reason to pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The environment variable naming the file skipped tests are listed in.
pub const SKIPPED_FILE: &str = "STAGEGATE_SKIPPED";

/// Whether this run is CI's, where a missing tool is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// True when `tool` is available; otherwise skips (false) or, under CI,
/// fails the calling test. `tool` is one of the names below; an unknown
/// name is a test bug and panics.
pub fn require_tool(tool: &str) -> bool {
    require(tool, || find(tool))
}

/// [`require_tool`] for something a test needs that is not a program on
/// the machine (a file a recipe makes, say): `check` says why it is
/// missing, and the test is skipped and listed, or fails under CI.
pub fn require(what: &str, check: impl FnOnce() -> Result<(), String>) -> bool {
    // Looked for once per run: some tests ask for a tool many times.
    static FOUND: Mutex<BTreeMap<String, Result<(), String>>> = Mutex::new(BTreeMap::new());
    let found = {
        let mut known = FOUND.lock().unwrap_or_else(|e| e.into_inner());
        known.entry(what.to_string()).or_insert_with(check).clone()
    };
    match found {
        Ok(()) => true,
        Err(why) => {
            skip(what, &why);
            false
        }
    }
}

/// nginx: `NGINX` (pointed at nothing, it shows what a machine without
/// nginx does), else Debian's path, else the other usual ones.
pub fn nginx_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NGINX").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The OCI registry: `STAGEGATE_TEST_REGISTRY` (pointed at nothing, it
/// shows what a machine without the registry does), else Debian's
/// `docker-registry`.
pub fn registry_path() -> PathBuf {
    std::env::var_os("STAGEGATE_TEST_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

/// The PostgreSQL server the tests create their databases on
/// (`postgres://USER:PASS@HOST:PORT`), from `STAGEGATE_TEST_POSTGRES`.
pub fn postgres_server() -> Option<String> {
    std::env::var("STAGEGATE_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Ok when `tool` is here, else why not.
fn find(tool: &str) -> Result<(), String> {
    match tool {
        "nginx" => nginx_path()
            .map(|_| ())
            .ok_or_else(|| "no nginx at $NGINX or in /usr/sbin, /usr/local/sbin, /usr/bin".into()),
        "docker-registry" => {
            let p = registry_path();
            if p.is_file() {
                Ok(())
            } else {
                Err(format!("{} is not installed", p.display()))
            }
        }
        "chromium" => file("/usr/bin/chromium"),
        "postgresql" => postgres_server().map(|_| ()).ok_or_else(|| {
            "STAGEGATE_TEST_POSTGRES=postgres://USER:PASS@HOST:PORT is not set".into()
        }),
        "componentize-py" => {
            let exe = std::env::var_os("STAGEGATE_COMPONENTIZE_PY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("componentize-py"));
            runs(
                Command::new(&exe).arg("--version"),
                &exe.display().to_string(),
            )
        }
        "playwright" => python_imports(&["playwright.sync_api"]),
        "in-toto" => python_imports(&[
            "in_toto.models.metadata",
            "securesystemslib.dsse",
            "securesystemslib.signer",
            "cryptography",
        ]),
        "trestle" => python_imports(&["trestle.oscal.assessment_results", "jsonschema"]),
        "pyyaml" => python_imports(&["yaml"]),
        "cryptography" => python_imports(&["cryptography"]),
        "jsonschema" => python_imports(&["jsonschema"]),
        // deploy/: the image, the overlays and the alert rules.
        "kubectl" | "promtool" | "prometheus" | "skopeo" | "buildah" | "unshare" => runs(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]),
            tool,
        ),
        "kubernetes-validate" => runs(
            Command::new("kubernetes-validate").arg("--version"),
            "kubernetes-validate",
        ),
        "python3" | "openssl" | "bash" | "curl" | "jq" => {
            let arg = if tool == "openssl" {
                "version"
            } else {
                "--version"
            };
            runs(Command::new(tool).arg(arg), tool)
        }
        other => panic!("require_tool: no tool called {other:?} is known (tests/support/tools.rs)"),
    }
}

fn file(path: &str) -> Result<(), String> {
    if Path::new(path).is_file() {
        Ok(())
    } else {
        Err(format!("{path} is not installed"))
    }
}

fn runs(cmd: &mut Command, what: &str) -> Result<(), String> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn python_imports(modules: &[&str]) -> Result<(), String> {
    let script = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    runs(
        Command::new("python3").args(["-c", &script]),
        &format!("python3 -c '{script}'"),
    )
}

/// The running test's name (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("a test")
        .to_string()
}

fn skip(tool: &str, why: &str) {
    let test = test_name();
    if in_ci() {
        panic!("{test} needs {tool}, and CI must run it: {why} (just test-deps installs it)");
    }
    let line = format!("skipped: {test} needs {tool} (just test-deps installs it)");
    // Captured (and so unseen) for a passing test under `cargo test`, but
    // shown with --nocapture; the list at the end of `just test` is what
    // a reader sees.
    println!("{line}: {why}");
    if let Some(path) = std::env::var_os(SKIPPED_FILE).filter(|p| !p.is_empty()) {
        use std::io::Write;
        // One write per line, appended: test threads and binaries share
        // the file.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

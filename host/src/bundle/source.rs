//! A policy directory: the source a bundle is built from.
//!
//! ```text
//! policies/iso42001/
//!   bundle.toml     name, version, description, where the component comes from
//!   params.json     thresholds handed to the policy's `configure`
//!   controls.json   finding code prefixes → control references
//!   tests/*.json    test cases for `stagegate test`
//! ```
//!
//! Files that go into the bundle are read through a cap-std directory handle
//! opened on the policy directory, so a `bundle.toml` cannot pull
//! `../../etc/passwd` into a signed artefact. The component is either built
//! from a Rust crate with cargo (`crate = "…"`), built from a Python module
//! with componentize-py (`python = "policy.py"`, see [`python`]), or taken
//! prebuilt from the directory (`wasm = "…"`), which is how policies written
//! in other languages are bundled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Deserialize;

use super::{ArchiveLimits, Bundle, BundleError, read_bounded};
use crate::decision::Controls;
use crate::wit::{WIT_PACKAGE, package_of};

/// Largest file that may become a bundle member: a larger one would only
/// build a bundle that no reader accepts.
const MEMBER_LIMIT: u64 = ArchiveLimits::DEFAULT.max_member_bytes;

/// `bundle.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleToml {
    pub name: String,
    pub version: semver::Version,
    #[serde(default)]
    pub description: Option<String>,
    pub component: ComponentSource,
}

/// Where `policy.wasm` comes from: exactly one of `crate`, `python` and
/// `wasm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSource {
    /// A Rust crate (relative to the policy directory) built with
    /// `cargo build --target wasm32-wasip2`.
    #[serde(rename = "crate")]
    pub krate: Option<PathBuf>,
    /// Cargo profile for `crate` (default `release`).
    pub profile: Option<String>,
    /// A prebuilt component inside the policy directory.
    pub wasm: Option<PathBuf>,
    /// A Python module inside the policy directory (e.g. `policy.py`),
    /// built with componentize-py.
    pub python: Option<PathBuf>,
}

/// An opened policy directory.
pub struct PolicySource {
    pub path: PathBuf,
    pub config: BundleToml,
    dir: Dir,
}

impl PolicySource {
    pub fn open(path: &Path) -> Result<Self, BundleError> {
        let err = |message: String| BundleError::Source {
            path: path.to_path_buf(),
            message,
        };
        let dir =
            Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| err(e.to_string()))?;
        let text = dir
            .open("bundle.toml")
            .map_err(|e| e.to_string())
            .and_then(|f| read_bounded(f, 1 << 20).map_err(|e| e.to_string()))
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
            .map_err(|e| err(format!("bundle.toml: {e}")))?;
        let config: BundleToml =
            toml::from_str(&text).map_err(|e| err(format!("bundle.toml: {e}")))?;
        super::manifest::check_name(&config.name).map_err(|m| err(format!("bundle.toml: {m}")))?;
        let c = &config.component;
        if [c.krate.is_some(), c.wasm.is_some(), c.python.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
            != 1
        {
            return Err(err(
                "bundle.toml: [component] needs exactly one of `crate` (a Rust crate to build), `python` (a Python module to build with componentize-py) or `wasm` (a prebuilt component)".into(),
            ));
        }
        Ok(PolicySource {
            path: path.to_path_buf(),
            config,
            dir,
        })
    }

    fn err(&self, message: String) -> BundleError {
        BundleError::Source {
            path: self.path.clone(),
            message,
        }
    }

    /// Reads a file inside the policy directory, refusing one larger than
    /// a bundle member may be (checked by size before reading, and again
    /// while reading).
    fn read(&self, name: &Path) -> Result<Vec<u8>, BundleError> {
        let file = self
            .dir
            .open(name)
            .map_err(|e| self.err(format!("{}: {e}", name.display())))?;
        read_bounded(file, MEMBER_LIMIT).map_err(|e| self.err(format!("{}: {e}", name.display())))
    }

    /// Reads a file inside the policy directory, if it exists.
    fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>, BundleError> {
        match self.dir.open(name) {
            Ok(file) => read_bounded(file, MEMBER_LIMIT)
                .map(Some)
                .map_err(|e| self.err(format!("{name}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(format!("{name}: {e}"))),
        }
    }

    /// Builds (or reads) the component and returns its bytes.
    pub fn component(&self) -> Result<Vec<u8>, BundleError> {
        if let Some(wasm) = &self.config.component.wasm {
            return self.read(wasm);
        }
        if let Some(module) = &self.config.component.python {
            return python::build(&self.path, module, MEMBER_LIMIT);
        }
        let krate = self.config.component.krate.clone().unwrap_or_default();
        let profile = self
            .config
            .component
            .profile
            .as_deref()
            .unwrap_or("release");
        let artifact = cargo_build(&self.path.join(krate), profile)?;
        let file = std::fs::File::open(&artifact).map_err(|e| BundleError::io(&artifact, e))?;
        read_bounded(file, MEMBER_LIMIT).map_err(|e| BundleError::Source {
            path: artifact.clone(),
            message: e.to_string(),
        })
    }

    /// Assembles the unsigned bundle: component, params and controls.
    pub fn bundle(&self) -> Result<Bundle, BundleError> {
        let mut files = BTreeMap::new();
        let component = self.component()?;
        // The manifest names the WIT version the component exports, so a
        // bundle built from a 1.0.0 component says 1.0.0. A component that
        // exports none is recorded as the newest and refused, with the
        // reason, when loaded.
        let wit = package_of(&component).unwrap_or_else(|| WIT_PACKAGE.to_string());
        files.insert("policy.wasm".to_string(), component);
        if let Some(params) = self.read_optional("params.json")? {
            serde_json::from_slice::<serde_json::Value>(&params)
                .map_err(|e| self.err(format!("params.json is not JSON: {e}")))?;
            files.insert("params.json".to_string(), params);
        }
        if let Some(controls) = self.read_optional("controls.json")? {
            Controls::parse(&controls).map_err(|e| self.err(e.to_string()))?;
            files.insert("controls.json".to_string(), controls);
        }
        Bundle::new(
            &self.config.name,
            self.config.version.clone(),
            &wit,
            self.config.description.clone(),
            files,
        )
    }

    /// The test case files (`tests/*.json`), sorted by name, with contents.
    pub fn test_files(&self) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
        let tests = match self.dir.open_dir("tests") {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(format!("tests/: {e}"))),
        };
        let mut names = Vec::new();
        for entry in tests
            .entries()
            .map_err(|e| self.err(format!("tests/: {e}")))?
        {
            let entry = entry.map_err(|e| self.err(format!("tests/: {e}")))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                names.push(name);
            }
        }
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let bytes = tests
                    .open(&n)
                    .map_err(|e| e.to_string())
                    .and_then(|f| {
                        read_bounded(f, ArchiveLimits::default().max_archive_bytes)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|e| self.err(format!("tests/{n}: {e}")))?;
                Ok((format!("tests/{n}"), bytes))
            })
            .collect()
    }
}

pub mod python {
    //! `[component] python = "policy.py"`: the module is compiled with
    //! componentize-py (the pinned version) against the WIT this host
    //! serves, with the Python SDK on the module path. Both are built into
    //! the binary, so a policy directory anywhere builds as it stands.

    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use super::super::{BundleError, read_bounded};

    /// The componentize-py release `stagegate build` runs.
    pub const VERSION: &str = "0.25.1";
    /// How to install it.
    pub const INSTALL: &str = "pip install componentize-py==0.25.1";

    const WIT: &str = include_str!("../../../wit/policy.wit");
    /// The SDK's files (`sdk/python/stagegate_policy/`).
    const SDK: [(&str, &str); 7] = [
        (
            "__init__.py",
            include_str!("../../../sdk/python/stagegate_policy/__init__.py"),
        ),
        (
            "criteria.py",
            include_str!("../../../sdk/python/stagegate_policy/criteria.py"),
        ),
        (
            "findings.py",
            include_str!("../../../sdk/python/stagegate_policy/findings.py"),
        ),
        (
            "policy.py",
            include_str!("../../../sdk/python/stagegate_policy/policy.py"),
        ),
        (
            "tiers.py",
            include_str!("../../../sdk/python/stagegate_policy/tiers.py"),
        ),
        (
            "time.py",
            include_str!("../../../sdk/python/stagegate_policy/time.py"),
        ),
        ("py.typed", ""),
    ];

    fn err(dir: &Path, message: String) -> BundleError {
        BundleError::Source {
            path: dir.to_path_buf(),
            message,
        }
    }

    /// The componentize-py to run: `STAGEGATE_COMPONENTIZE_PY`, else the
    /// one on `PATH`.
    fn tool() -> PathBuf {
        std::env::var_os("STAGEGATE_COMPONENTIZE_PY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("componentize-py"))
    }

    /// Checks that the pinned componentize-py is installed.
    pub fn check_tool(dir: &Path) -> Result<(), BundleError> {
        check_tool_at(&tool(), dir)
    }

    fn check_tool_at(tool: &Path, dir: &Path) -> Result<(), BundleError> {
        let out = Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                err(
                    dir,
                    if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "building a Python policy needs componentize-py {VERSION}, which is not installed ({} not found); install it with `{INSTALL}`",
                            tool.display()
                        )
                    } else {
                        format!("running {}: {e}; install componentize-py with `{INSTALL}`", tool.display())
                    },
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text.split_whitespace().last().unwrap_or("").to_string();
        if found != VERSION {
            return Err(err(
                dir,
                format!(
                    "building a Python policy needs componentize-py {VERSION}, found '{}'; install it with `{INSTALL}`",
                    text.trim()
                ),
            ));
        }
        Ok(())
    }

    /// Builds `module` (a `.py` file directly inside `dir`) and returns the
    /// component's bytes.
    pub fn build(dir: &Path, module: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
        let name = module
            .to_str()
            .filter(|m| !m.contains('/') && !m.contains('\\'))
            .and_then(|m| m.strip_suffix(".py"))
            .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| {
                err(
                    dir,
                    format!(
                        "bundle.toml: [component] python = '{}' must name a .py file directly in the policy directory, e.g. \"policy.py\"",
                        module.display()
                    ),
                )
            })?;
        if !dir.join(module).is_file() {
            return Err(err(dir, format!("{}: no such file", module.display())));
        }
        check_tool(dir)?;
        let work = std::env::temp_dir().join(format!(
            "stagegate-python-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let result = build_in(dir, name, &work, limit);
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    fn build_in(dir: &Path, module: &str, work: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
        let io = |p: &Path, e: std::io::Error| BundleError::io(p, e);
        let wit = work.join("wit");
        let sdk = work.join("sdk/stagegate_policy");
        std::fs::create_dir_all(&wit).map_err(|e| io(&wit, e))?;
        std::fs::create_dir_all(&sdk).map_err(|e| io(&sdk, e))?;
        std::fs::write(wit.join("policy.wit"), WIT).map_err(|e| io(&wit, e))?;
        for (file, text) in SDK {
            std::fs::write(sdk.join(file), text).map_err(|e| io(&sdk, e))?;
        }
        let out = work.join("policy.wasm");
        let output = Command::new(tool())
            .arg("-d")
            .arg(&wit)
            .args(["-w", "policy", "componentize", "-p"])
            .arg(dir)
            .arg("-p")
            .arg(work.join("sdk"))
            .arg(module)
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                err(
                    dir,
                    format!("running componentize-py: {e}; install it with `{INSTALL}`"),
                )
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(err(
                dir,
                format!(
                    "componentize-py could not build {module}.py ({}):\n{}",
                    output.status,
                    tail.join("\n")
                ),
            ));
        }
        let file = std::fs::File::open(&out).map_err(|e| io(&out, e))?;
        read_bounded(file, limit).map_err(|e| err(dir, format!("the built component: {e}")))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_missing_componentize_py_is_an_error_naming_the_install_command() {
            let e = check_tool_at(Path::new("/nonexistent/componentize-py"), Path::new("p"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("pip install componentize-py==0.25.1"), "{e}");
            assert!(e.contains("not installed"), "{e}");
        }

        #[test]
        fn the_module_must_be_a_py_file_in_the_policy_directory() {
            for bad in ["../x.py", "policy", "sub/policy.py", "po-licy.py"] {
                let e = build(Path::new("."), Path::new(bad), 1)
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("must name a .py file"), "{bad}: {e}");
            }
        }
    }
}

/// The subset of cargo's JSON messages needed to find the built component.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

/// `cargo build --target wasm32-wasip2` for the crate at `krate`; returns
/// the path of the `.wasm` component. Cargo's own progress and diagnostics
/// go to our stderr.
fn cargo_build(krate: &Path, profile: &str) -> Result<PathBuf, BundleError> {
    let manifest = krate.join("Cargo.toml");
    let manifest = manifest
        .canonicalize()
        .map_err(|e| BundleError::Build(format!("{}: {e}", manifest.display())))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "build",
            "--lib",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--profile")
        .arg(profile)
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BundleError::Build(format!("running {}: {e}", Path::new(&cargo).display())))?;
    if !output.status.success() {
        return Err(BundleError::Build(format!(
            "cargo build of {} failed ({}); is the target installed? `rustup target add wasm32-wasip2`",
            manifest.display(),
            output.status
        )));
    }
    let mut found = None;
    for line in output.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<CargoMessage>(line) else {
            continue;
        };
        if msg.reason == "compiler-artifact"
            && msg.manifest_path.as_deref() == Some(manifest.as_path())
        {
            found = msg
                .filenames
                .into_iter()
                .find(|f| f.extension().is_some_and(|x| x == "wasm"));
        }
    }
    found.ok_or_else(|| {
        BundleError::Build(format!(
            "cargo built {} but produced no .wasm; does the crate have crate-type = [\"cdylib\"]?",
            manifest.display()
        ))
    })
}

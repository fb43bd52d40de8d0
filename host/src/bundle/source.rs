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
//! from a Rust crate with cargo (`crate = "…"`) or taken prebuilt from the
//! directory (`wasm = "…"`), which is how policies written in other languages
//! are bundled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Deserialize;

use super::{ArchiveLimits, Bundle, BundleError, read_bounded};
use crate::decision::Controls;
use crate::policy::bindings::{WIT_PACKAGE, package_of};

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

/// Where `policy.wasm` comes from: exactly one of `crate` and `wasm`.
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
        match (&config.component.krate, &config.component.wasm) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(err(
                    "bundle.toml: [component] needs exactly one of `crate` (a Rust crate to build) or `wasm` (a prebuilt component)".into(),
                ));
            }
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
            Controls::parse(&controls).map_err(|e| self.err(e))?;
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

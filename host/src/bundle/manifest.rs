//! `manifest.json`: what a bundle is and exactly which files it holds.
//!
//! Signatures cover the manifest's bytes, and the manifest covers every
//! other file by SHA-256 and size, so one signature check plus one digest
//! check per file verifies the whole bundle.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BundleError;
use crate::wit::{WitVersion, supported_list};

/// The manifest format this host reads and writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Bundle format version (currently 1).
    pub format: u32,
    /// Bundle name: lowercase letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Semantic version; a lower version never replaces a higher one
    /// unless forced.
    pub version: semver::Version,
    /// The WIT package the component was built against, e.g.
    /// `stagegate:policy@1.0.0`.
    pub wit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every file besides `manifest.json` and `signatures.json`, sorted by path.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub size: u64,
}

impl FileEntry {
    pub fn of(path: &str, bytes: &[u8]) -> Self {
        FileEntry {
            path: path.to_string(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Files every bundle must hold.
pub const REQUIRED_FILES: [&str; 1] = ["policy.wasm"];

impl Manifest {
    /// Parses and checks a manifest: format, name, WIT package syntax, and a
    /// sorted, duplicate-free file list of safe names.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let m: Manifest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            BundleError::Manifest(format!("at {path}: {}", e.into_inner()))
        })?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), BundleError> {
        if self.format != FORMAT {
            return Err(BundleError::Manifest(format!(
                "format {} is not supported (this host reads format {FORMAT})",
                self.format
            )));
        }
        check_name(&self.name).map_err(|e| BundleError::Manifest(e.to_string()))?;
        parse_wit(&self.wit).map_err(|e| BundleError::Manifest(e.to_string()))?;
        for f in &self.files {
            if !super::archive::is_safe_name(&f.path) || super::archive::is_reserved(&f.path) {
                return Err(BundleError::Manifest(format!(
                    "file path '{}' is not allowed",
                    f.path
                )));
            }
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(BundleError::Manifest(format!(
                    "file '{}': sha256 must be 64 lowercase hex digits",
                    f.path
                )));
            }
        }
        for pair in self.files.windows(2) {
            if pair[0].path >= pair[1].path {
                return Err(BundleError::Manifest(format!(
                    "files must be sorted and unique: '{}' then '{}'",
                    pair[0].path, pair[1].path
                )));
            }
        }
        for required in REQUIRED_FILES {
            if !self.files.iter().any(|f| f.path == required) {
                return Err(BundleError::Manifest(format!(
                    "required file '{required}' is not listed"
                )));
            }
        }
        Ok(())
    }

    /// The manifest as stored in a bundle: pretty JSON for people who open
    /// the archive, and the exact bytes signatures cover.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Refuses a bundle built for a WIT package this host cannot run
    /// (docs/wit-versions.md): another package, another major version, or
    /// a minor version newer than the newest this host serves (which may
    /// rely on fields this host does not have). Every older minor is served
    /// through its own bindings.
    pub fn check_wit_compatible(&self) -> Result<(), BundleError> {
        let incompatible = |why: String| BundleError::IncompatibleWit {
            bundle: self.wit.clone(),
            host: supported_list(),
            why,
        };
        let (pkg, version) = parse_wit(&self.wit).map_err(|e| incompatible(e.to_string()))?;
        if pkg != "stagegate:policy" {
            return Err(incompatible(format!(
                "package '{pkg}' is not 'stagegate:policy'"
            )));
        }
        WitVersion::for_version(&version).map(|_| ()).map_err(|_| {
            incompatible(if version.major != 1 {
                format!("major version {} differs from 1", version.major)
            } else {
                format!(
                    "minor version {} is newer than the newest this host runs; upgrade the host",
                    version.minor
                )
            })
        })
    }
}

/// Splits `stagegate:policy@1.0.0` into package and version.
pub fn parse_wit(wit: &str) -> Result<(&str, semver::Version), BundleError> {
    let (pkg, version) = wit
        .split_once('@')
        .ok_or_else(|| BundleError::WitNoVersion(wit.to_string()))?;
    let version = semver::Version::parse(version).map_err(|e| BundleError::WitVersion {
        wit: wit.to_string(),
        error: e.to_string(),
    })?;
    if !pkg.contains(':') {
        return Err(BundleError::WitPackage(wit.to_string()));
    }
    Ok((pkg, version))
}

/// A bundle name is a short, path-safe identifier.
pub fn check_name(name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(BundleError::Name(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::WIT_PACKAGE;

    fn manifest(wit: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            name: "iso42001-reference".into(),
            version: semver::Version::new(1, 0, 0),
            wit: wit.into(),
            description: None,
            files: vec![FileEntry::of("policy.wasm", b"\0asm")],
        }
    }

    #[test]
    fn a_manifest_round_trips_through_its_bytes() {
        let m = manifest(WIT_PACKAGE);
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn wit_compatibility_follows_semver() {
        assert!(
            manifest("stagegate:policy@1.0.0")
                .check_wit_compatible()
                .is_ok()
        );
        let e = manifest("stagegate:policy@2.0.0")
            .check_wit_compatible()
            .unwrap_err();
        assert!(e.to_string().contains("major version 2"), "{e}");
        assert!(
            manifest("stagegate:policy@1.1.0")
                .check_wit_compatible()
                .is_ok()
        );
        let e = manifest("stagegate:policy@1.2.0")
            .check_wit_compatible()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "bundle was built for stagegate:policy@1.2.0, this host runs stagegate:policy@1.0.0 and stagegate:policy@1.1.0: minor version 2 is newer than the newest this host runs; upgrade the host"
        );
        let e = manifest("other:policy@1.0.0")
            .check_wit_compatible()
            .unwrap_err();
        assert!(e.to_string().contains("package"), "{e}");
    }

    #[test]
    fn unsorted_or_unsafe_file_lists_are_refused() {
        let mut m = manifest(WIT_PACKAGE);
        m.files.insert(0, FileEntry::of("zz.json", b"{}"));
        assert!(
            Manifest::parse(&m.to_bytes())
                .unwrap_err()
                .to_string()
                .contains("sorted")
        );
        let mut m = manifest(WIT_PACKAGE);
        m.files.push(FileEntry::of("../x", b"{}"));
        assert!(
            Manifest::parse(&m.to_bytes())
                .unwrap_err()
                .to_string()
                .contains("not allowed")
        );
    }

    #[test]
    fn bundle_names_are_path_safe() {
        assert!(check_name("iso42001-reference").is_ok());
        assert!(check_name("../etc").is_err());
        assert!(check_name("Upper").is_err());
        assert!(check_name("").is_err());
    }
}

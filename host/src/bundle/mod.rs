//! Signed policy bundles (docs/bundles.md): data, verified before use.
//!
//! A bundle is one archive: `manifest.json` (name, version, WIT package,
//! every file's SHA-256 and size), `policy.wasm`, `params.json`,
//! `controls.json` and `signatures.json`. Reading a bundle checks the
//! archive's structure and that its files are exactly those the manifest
//! lists, with the listed digests; [`Bundle::verify`] then checks the
//! signatures against a trust store.

pub mod archive;
pub mod error;
pub mod key_hygiene;
pub mod keys;
pub mod manifest;
pub mod signatures;
pub mod source;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

pub use archive::ArchiveLimits;
pub use error::BundleError;
pub use keys::TrustStore;
pub use manifest::{FileEntry, Manifest};
pub use signatures::{Signatures, Signer};

use crate::decision::{Controls, PolicyRef};

/// Why a file could not be read whole.
#[derive(Debug)]
pub enum BoundedReadError {
    Io(std::io::Error),
    /// The file holds more than the limit (`size` is what it declared, or
    /// the limit plus one when it grew while being read).
    TooLarge {
        size: u64,
        limit: u64,
    },
}

impl std::fmt::Display for BoundedReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundedReadError::Io(e) => e.fmt(f),
            BoundedReadError::TooLarge { size, limit } => {
                write!(f, "{size} bytes, over the {limit}-byte limit")
            }
        }
    }
}

/// A file that can say how large it is: `std` and `cap-std` files.
pub trait KnownLen {
    fn len_hint(&self) -> std::io::Result<u64>;
}

impl KnownLen for std::fs::File {
    fn len_hint(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
}

impl KnownLen for cap_std::fs::File {
    fn len_hint(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
}

/// Reads an opened file whole, refusing one larger than `limit` bytes:
/// first by its size (no read at all), then by reading at most `limit + 1`
/// bytes, so a file that grows (or a device that never ends) cannot make
/// the reader allocate more than the limit.
pub fn read_bounded(
    mut file: impl Read + KnownLen,
    limit: u64,
) -> Result<Vec<u8>, BoundedReadError> {
    let size = file.len_hint().map_err(BoundedReadError::Io)?;
    if size > limit {
        return Err(BoundedReadError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// A bundle read into memory whose files match its manifest. Signatures
/// are not yet checked: see [`Bundle::verify`].
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    pub signatures: Signatures,
}

impl Bundle {
    /// Assembles a new, unsigned bundle from its files.
    pub fn new(
        name: &str,
        version: semver::Version,
        wit: &str,
        description: Option<String>,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, BundleError> {
        let manifest = Manifest {
            format: manifest::FORMAT,
            name: name.to_string(),
            version,
            wit: wit.to_string(),
            description,
            files: files.iter().map(|(p, b)| FileEntry::of(p, b)).collect(),
        };
        let manifest_bytes = manifest.to_bytes();
        // Parse our own output: one set of rules for what a manifest may say.
        Manifest::parse(&manifest_bytes)?;
        Ok(Bundle {
            manifest,
            manifest_bytes,
            files,
            signatures: Signatures::default(),
        })
    }

    /// Reads a bundle archive and checks that its files are exactly those
    /// listed in the manifest, with matching sizes and digests.
    pub fn from_bytes(bytes: &[u8], limits: &ArchiveLimits) -> Result<Self, BundleError> {
        let mut members = archive::read_members(bytes, limits)?;
        let manifest_bytes = members
            .remove(archive::MANIFEST)
            .ok_or(BundleError::MissingManifest)?;
        let manifest = Manifest::parse(&manifest_bytes)?;
        let signatures = match members.remove(archive::SIGNATURES) {
            Some(b) => Signatures::parse(&b)?,
            None => Signatures::default(),
        };
        for entry in &manifest.files {
            let Some(data) = members.get(&entry.path) else {
                return Err(BundleError::MissingFile(entry.path.clone()));
            };
            if data.len() as u64 != entry.size {
                return Err(BundleError::SizeMismatch {
                    name: entry.path.clone(),
                    expected: entry.size,
                    actual: data.len() as u64,
                });
            }
            let actual = manifest::sha256_hex(data);
            if actual != entry.sha256 {
                return Err(BundleError::DigestMismatch {
                    name: entry.path.clone(),
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
        }
        if let Some(extra) = members
            .keys()
            .find(|k| !manifest.files.iter().any(|f| &f.path == *k))
        {
            return Err(BundleError::UnlistedFile(extra.clone()));
        }
        Ok(Bundle {
            manifest,
            manifest_bytes,
            files: members,
            signatures,
        })
    }

    /// Reads a bundle file.
    pub fn read(path: &Path, limits: &ArchiveLimits) -> Result<Self, BundleError> {
        let file = std::fs::File::open(path).map_err(|e| BundleError::io(path, e))?;
        let bytes = read_bounded(file, limits.max_archive_bytes).map_err(|e| match e {
            BoundedReadError::Io(e) => BundleError::io(path, e),
            BoundedReadError::TooLarge { size, limit } => {
                BundleError::ArchiveTooLarge { size, limit }
            }
        })?;
        Self::from_bytes(&bytes, limits)
    }

    /// The archive's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let signatures = self.signatures.to_bytes();
        let members = [
            (archive::MANIFEST, self.manifest_bytes.as_slice()),
            (archive::SIGNATURES, signatures.as_slice()),
        ]
        .into_iter()
        .chain(self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        archive::write_members(members)
    }

    /// Writes the archive atomically (temporary file, then rename), so a
    /// reader never sees half a bundle.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let bytes = self.to_bytes()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
        }
        let tmp = path.with_extension("bundle.tmp");
        std::fs::write(&tmp, &bytes).map_err(|e| BundleError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| BundleError::io(path, e))
    }

    /// Adds a signature by `key` over the manifest.
    pub fn sign(&mut self, key: &SigningKey) -> String {
        self.signatures.sign(key, &self.manifest_bytes)
    }

    /// Verifies the signatures (k-of-n against `trust`) and that the bundle
    /// targets a WIT package this host runs. File digests were already
    /// checked when the bundle was read.
    pub fn verify(
        &self,
        trust: &TrustStore,
        min_signatures: usize,
    ) -> Result<Vec<Signer>, BundleError> {
        let signers = self
            .signatures
            .verify(&self.manifest_bytes, trust, min_signatures)?;
        self.manifest.check_wit_compatible()?;
        Ok(signers)
    }

    /// `sha256:` of the manifest bytes, which commit to every file: the
    /// bundle's identity in decisions and logs.
    pub fn digest(&self) -> String {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(&self.manifest_bytes))
        )
    }

    /// The manifest exactly as signed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// A listed file's bytes.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// The component.
    pub fn wasm(&self) -> &[u8] {
        self.file("policy.wasm").unwrap_or_default()
    }

    /// `params.json` as text (`{}` when the bundle has none).
    pub fn params(&self) -> Result<String, BundleError> {
        match self.file("params.json") {
            None => Ok("{}".into()),
            Some(b) => String::from_utf8(b.to_vec())
                .map_err(|_| BundleError::Manifest("params.json is not UTF-8".into())),
        }
    }

    /// The control map (empty when the bundle has no `controls.json`).
    pub fn controls(&self) -> Result<Controls, BundleError> {
        match self.file("controls.json") {
            None => Ok(Controls::default()),
            Some(b) => Controls::parse(b).map_err(|e| BundleError::Manifest(e.to_string())),
        }
    }

    /// How decisions name this bundle.
    pub fn policy_ref(&self) -> PolicyRef {
        PolicyRef {
            bundle: self.manifest.name.clone(),
            version: self.manifest.version.to_string(),
            digest: self.digest(),
            members: Vec::new(),
        }
    }
}

//! Why a bundle was refused. Every message names the file, key or limit at
//! fault, because the person reading it is deciding whether a policy may
//! govern production.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle archive is not a valid gzip-compressed tar file: {0}")]
    Archive(String),
    #[error("bundle archive is {size} bytes, over the {limit}-byte limit")]
    ArchiveTooLarge { size: u64, limit: u64 },
    #[error("archive member '{name}' is {size} bytes, over the {limit}-byte limit")]
    MemberTooLarge { name: String, size: u64, limit: u64 },
    #[error(
        "bundle archive decompresses to more than {limit} bytes, the most its size limits allow; reading stopped there"
    )]
    DecompressedTooLarge { limit: u64 },
    #[error(
        "archive members together are {total} bytes by member '{name}', over the {limit}-byte limit"
    )]
    TotalTooLarge {
        name: String,
        total: u64,
        limit: u64,
    },
    #[error("archive entry #{entry} ('{name}') is past the limit of {limit} members")]
    TooManyMembers {
        entry: usize,
        name: String,
        limit: usize,
    },
    #[error(
        "archive entry #{entry} is a {kind} declaring {size} bytes; bundles never need tar extensions (member names are at most 100 characters), so they are refused unread"
    )]
    ExtensionEntry {
        entry: usize,
        kind: &'static str,
        size: u64,
    },
    #[error("archive member '{name}' is a {kind}; a bundle holds regular files only")]
    NotAFile { name: String, kind: String },
    #[error(
        "archive member '{0}' has a path outside the bundle root (absolute, '..' or a directory)"
    )]
    UnsafePath(String),
    #[error("archive member '{0}' appears twice")]
    DuplicateMember(String),
    #[error("bundle has no manifest.json")]
    MissingManifest,
    #[error("manifest.json is invalid: {0}")]
    Manifest(String),
    #[error("signatures.json is invalid: {0}")]
    SignaturesFile(String),
    #[error("file '{0}' is listed in the manifest but missing from the bundle")]
    MissingFile(String),
    #[error("file '{0}' is in the bundle but not listed in the manifest")]
    UnlistedFile(String),
    #[error("file '{name}' does not match the manifest: sha256 {actual}, manifest says {expected}")]
    DigestMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("file '{name}' is {actual} bytes, manifest says {expected}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("bundle was built for {bundle}, this host runs {host}: {why}")]
    IncompatibleWit {
        bundle: String,
        host: String,
        why: String,
    },
    #[error("key file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("trust store {path}: {message}")]
    TrustStore { path: PathBuf, message: String },
    #[error(
        "signature by trusted key {key_id} ({key_name}) does not verify: the manifest was altered after signing, or the signature is corrupt"
    )]
    BadSignature { key_id: String, key_name: String },
    #[error("{0}")]
    TooFewSignatures(String),
    #[error("policy directory {path}: {message}")]
    Source { path: PathBuf, message: String },
    #[error("building the policy component failed: {0}")]
    Build(String),
    /// A bundle name that is not a short, path-safe identifier.
    #[error(
        "bundle name '{0}' must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    Name(String),
    #[error("WIT package '{0}' has no @version")]
    WitNoVersion(String),
    #[error("WIT package '{wit}': version: {error}")]
    WitVersion { wit: String, error: String },
    #[error("WIT package '{0}' is not namespace:name@version")]
    WitPackage(String),
    /// A service beyond loopback (`listen`) trusts a key (`what`, at
    /// `key`) whose private half is on this host (`reason`).
    #[error(
        "{listen} is not a loopback address, but {what} {} {reason}: whoever can read this host's files could sign what the service trusts. Move the private key off this host (keep it where bundles and attestations are signed) and remove it here, or listen on loopback for development",
        key.display()
    )]
    SecretOnHost {
        listen: std::net::SocketAddr,
        what: String,
        key: PathBuf,
        reason: String,
    },
}

impl BundleError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }
}

//! Ed25519 signing keys and the trust store of public keys.
//!
//! Keys are standard PEM files (PKCS#8 secret, SPKI public), so they can be
//! generated, inspected or held in an HSM-backed workflow with ordinary
//! tools. A key is identified by a short digest of its public key bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::BundleError;

/// The first 16 hex digits of SHA-256 over the raw public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Creates a key pair: `path` (secret, mode 0600) and `path.pub`.
/// Refuses to overwrite an existing key: losing a signing key by accident
/// is worse than an error.
pub fn generate(path: &Path) -> Result<(SigningKey, PathBuf), BundleError> {
    let public_path = public_path(path);
    for p in [path, public_path.as_path()] {
        if p.exists() {
            return Err(BundleError::Key {
                path: p.to_path_buf(),
                message: "already exists; refusing to overwrite a key".into(),
            });
        }
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let secret = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| BundleError::Key {
            path: path.to_path_buf(),
            message: format!("encoding: {e}"),
        })?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| BundleError::Key {
            path: public_path.clone(),
            message: format!("encoding: {e}"),
        })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
    }
    write_secret(path, secret.as_bytes())?;
    fs::write(&public_path, public.as_bytes()).map_err(|e| BundleError::io(&public_path, e))?;
    Ok((key, public_path))
}

/// `KEY` → `KEY.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| BundleError::io(path, e))?;
    f.write_all(bytes).map_err(|e| BundleError::io(path, e))
}

/// Reads a secret key written by [`generate`].
pub fn load_secret(path: &Path) -> Result<SigningKey, BundleError> {
    let text = fs::read_to_string(path).map_err(|e| BundleError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| BundleError::Key {
        path: path.to_path_buf(),
        message: format!("not an Ed25519 PKCS#8 PEM secret key: {e}"),
    })
}

/// Reads a public key (`*.pub`, SPKI PEM).
pub fn load_public(path: &Path) -> Result<VerifyingKey, BundleError> {
    let text = fs::read_to_string(path).map_err(|e| BundleError::io(path, e))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| BundleError::Key {
        path: path.to_path_buf(),
        message: format!("not an Ed25519 public key in PEM: {e}"),
    })
}

/// A public key the operator trusts to sign bundles.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// File stem of the key file, e.g. `compliance-lead` for `compliance-lead.pub`.
    pub name: String,
    pub key: VerifyingKey,
}

/// The public keys in a directory (`*.pub`), by key id.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    pub path: PathBuf,
    pub keys: BTreeMap<String, TrustedKey>,
}

impl TrustStore {
    /// Loads every `*.pub` in `dir`. A file that is not a valid key is an
    /// error naming it, not a silently smaller trust store; an empty store
    /// is an error too, because it can verify nothing.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let err = |message: String| BundleError::TrustStore {
            path: dir.to_path_buf(),
            message,
        };
        let entries = fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
        let mut keys = BTreeMap::new();
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pub") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let key = load_public(&path)?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            keys.entry(key_id(&key)).or_insert(TrustedKey { name, key });
        }
        if keys.is_empty() {
            return Err(err("holds no public keys (*.pub)".into()));
        }
        Ok(TrustStore {
            path: dir.to_path_buf(),
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_back_and_the_secret_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/dev");
        let (key, public) = generate(&path).unwrap();
        assert_eq!(load_secret(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(load_public(&public).unwrap(), key.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let e = generate(&path).unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    }

    #[test]
    fn a_trust_store_names_a_bad_key_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("broken.pub"), "not a key").unwrap();
        let e = TrustStore::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("broken.pub"), "{e}");
    }

    #[test]
    fn an_empty_trust_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = TrustStore::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no public keys"), "{e}");
    }
}

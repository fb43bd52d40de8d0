//! Trust that binds however the configuration is written.
//!
//! A service that other hosts can reach must not trust a key whose secret
//! half lives on the same machine: whoever reads that file (a backup, a
//! debug shell, a path traversal anywhere on the host) can sign a policy
//! or an attestation the service accepts. `Config::check_development_keys`
//! catches the one shape the embedded configuration makes (`sign_with`
//! pointing into the trust store); this check looks at the keys
//! themselves, whatever the configuration says:
//!
//! - a trusted public key (`trust.dir/*.pub`, `[[evidence.keys]] file`)
//!   with its private half beside it (`KEY` for `KEY.pub`, as `stagegate
//!   keygen` writes them; `KEY.pem` / `KEY.key` for `KEY.pub.pem`);
//! - a trusted "public" key file that holds a private key;
//! - a trusted key that is the development key a first `stagegate serve`
//!   created (`DATA_DIR/keys/dev.pub`, or `data/keys/dev.pub` where the
//!   embedded configuration puts it).
//!
//! On loopback (development) all of this is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::BundleError;

/// What a service trusts, and where it listens.
#[derive(Debug, Clone)]
pub struct Trusted<'a> {
    /// Every address the service listens on.
    pub listen: Vec<SocketAddr>,
    /// The bundle trust store (`trust.dir`): its `*.pub` keys.
    pub trust_dir: &'a Path,
    /// Evidence keys (`[[evidence.keys]] file`), in configuration order.
    pub evidence_keys: Vec<PathBuf>,
    /// Where a first `stagegate serve` keeps its development key.
    pub data_dir: &'a Path,
}

/// Refuses a non-loopback service that trusts a key whose secret is on
/// this host; the error names the key file and what to do.
pub fn check(t: &Trusted<'_>) -> Result<(), BundleError> {
    let Some(public) = t.listen.iter().find(|a| !a.ip().is_loopback()) else {
        return Ok(());
    };
    let dev_keys: Vec<(PathBuf, Vec<u8>)> = [
        t.data_dir.join("keys/dev.pub"),
        PathBuf::from("data/keys/dev.pub"),
    ]
    .into_iter()
    .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
    .collect();
    for (key, what) in trusted_keys(t) {
        if let Some(reason) = secret_on_host(&key, &dev_keys) {
            return Err(BundleError::SecretOnHost {
                listen: *public,
                what,
                key,
                reason,
            });
        }
    }
    Ok(())
}

/// Every trusted key file, with what trusts it.
fn trusted_keys(t: &Trusted<'_>) -> Vec<(PathBuf, String)> {
    let mut keys = Vec::new();
    if let Ok(entries) = std::fs::read_dir(t.trust_dir) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        names.sort();
        for p in names {
            let shown = t.trust_dir.join(p.file_name().unwrap_or_default());
            keys.push((shown, "the bundle trust store's key".to_string()));
        }
    }
    for (i, k) in t.evidence_keys.iter().enumerate() {
        keys.push((k.clone(), format!("the evidence key evidence.keys[{i}]")));
    }
    keys
}

/// Why `key` counts as having its secret on this host, if it does.
fn secret_on_host(key: &Path, dev_keys: &[(PathBuf, Vec<u8>)]) -> Option<String> {
    let bytes = std::fs::read(key).ok()?;
    if String::from_utf8_lossy(&bytes).contains("PRIVATE KEY") {
        return Some("is itself a private key".into());
    }
    for private in private_halves(key) {
        if private.is_file() {
            return Some(format!(
                "has its private half {} beside it",
                private.display()
            ));
        }
    }
    for (dev, dev_bytes) in dev_keys {
        if &bytes == dev_bytes {
            let secret = dev.with_extension("");
            return Some(format!(
                "is the development key that `stagegate serve` created ({}, secret {})",
                dev.display(),
                secret.display()
            ));
        }
    }
    None
}

/// Where the private half of a public key file would be, by the usual
/// names.
fn private_halves(key: &Path) -> Vec<PathBuf> {
    let name = key.to_string_lossy();
    let mut out = Vec::new();
    if let Some(stem) = name.strip_suffix(".pub") {
        out.push(PathBuf::from(stem));
    }
    if let Some(stem) = name.strip_suffix(".pub.pem") {
        out.push(PathBuf::from(format!("{stem}.pem")));
        out.push(PathBuf::from(format!("{stem}.key")));
        out.push(PathBuf::from(stem));
    }
    if let Some(stem) = name.strip_suffix("-public.pem") {
        out.push(PathBuf::from(format!("{stem}-private.pem")));
        out.push(PathBuf::from(format!("{stem}.pem")));
    }
    out.retain(|p| p != key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_half_is_looked_for_by_the_usual_names() {
        assert_eq!(
            private_halves(Path::new("trust/ops.pub")),
            vec![PathBuf::from("trust/ops")]
        );
        assert!(private_halves(Path::new("k/ci.pub.pem")).contains(&PathBuf::from("k/ci.pem")));
        assert!(
            private_halves(Path::new("k/ci-public.pem"))
                .contains(&PathBuf::from("k/ci-private.pem"))
        );
        assert!(private_halves(Path::new("k/ci.pem")).is_empty());
    }
}

//! The bundle file: a gzip-compressed tar archive, read entirely in memory.
//!
//! Reading never trusts the archive. Nothing is extracted to disk, so a
//! hostile member name cannot write anywhere; and before a byte of a member
//! is read, its name, type and declared size are checked against
//! [`ArchiveLimits`]. Reading stops at the first member that breaks a rule.

use std::collections::BTreeMap;
use std::io::Read;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::BundleError;

/// Size and count limits for reading a bundle archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Largest compressed bundle file.
    pub max_archive_bytes: u64,
    /// Largest single member, uncompressed.
    pub max_member_bytes: u64,
    /// Largest sum of all members, uncompressed.
    pub max_total_bytes: u64,
    /// Most members in one archive.
    pub max_members: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_archive_bytes: 64 << 20,
            max_member_bytes: 32 << 20,
            max_total_bytes: 96 << 20,
            max_members: 32,
        }
    }
}

/// Names with a fixed role that the manifest does not list.
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURES: &str = "signatures.json";

pub(crate) fn is_reserved(name: &str) -> bool {
    name == MANIFEST || name == SIGNATURES
}

/// A member name is a single path component of safe characters: no
/// directories, no `..`, no absolute paths, no hidden files.
pub(crate) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
}

/// Reads every member of a bundle archive into memory, by name.
pub fn read_members(
    bytes: &[u8],
    limits: &ArchiveLimits,
) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    if bytes.len() as u64 > limits.max_archive_bytes {
        return Err(BundleError::ArchiveTooLarge {
            size: bytes.len() as u64,
            limit: limits.max_archive_bytes,
        });
    }
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut members = BTreeMap::new();
    let mut total: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| BundleError::Archive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleError::Archive(e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(BundleError::NotAFile {
                name,
                kind: entry_kind(kind).to_string(),
            });
        }
        if !is_safe_name(&name) {
            return Err(BundleError::UnsafePath(name));
        }
        if members.len() >= limits.max_members {
            return Err(BundleError::TooManyMembers(limits.max_members));
        }
        if members.contains_key(&name) {
            return Err(BundleError::DuplicateMember(name));
        }
        let declared = entry
            .header()
            .size()
            .map_err(|e| BundleError::Archive(e.to_string()))?;
        if declared > limits.max_member_bytes {
            return Err(BundleError::MemberTooLarge {
                name,
                size: declared,
                limit: limits.max_member_bytes,
            });
        }
        total = total.saturating_add(declared);
        if total > limits.max_total_bytes {
            return Err(BundleError::ArchiveTooLarge {
                size: total,
                limit: limits.max_total_bytes,
            });
        }
        let mut data = Vec::with_capacity(declared as usize);
        (&mut entry)
            .take(limits.max_member_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|e| BundleError::Archive(format!("reading '{name}': {e}")))?;
        if data.len() as u64 != declared {
            return Err(BundleError::Archive(format!(
                "member '{name}' declares {declared} bytes but holds {}",
                data.len()
            )));
        }
        members.insert(name, data);
    }
    Ok(members)
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    use tar::EntryType::*;
    match kind {
        Symlink => "symbolic link",
        Link => "hard link",
        Directory => "directory",
        Char | Block => "device",
        Fifo => "fifo",
        _ => "special entry",
    }
}

/// Writes members into a reproducible archive: fixed order, timestamps,
/// owners and modes, so the same bundle always has the same bytes.
pub fn write_members<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<u8>, BundleError> {
    let gz = GzEncoder::new(Vec::new(), Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, name, data)
            .map_err(|e| BundleError::Archive(format!("writing '{name}': {e}")))?;
    }
    let gz = builder
        .into_inner()
        .map_err(|e| BundleError::Archive(e.to_string()))?;
    gz.finish().map_err(|e| BundleError::Archive(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an archive with raw tar headers, bypassing the safe writer, the
    /// way an attacker would.
    fn hostile(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let gz = GzEncoder::new(Vec::new(), Compression::default());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Write the name bytes directly: `set_path` refuses `..`.
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn members_round_trip_and_the_archive_is_reproducible() {
        let a = write_members([("manifest.json", &b"{}"[..]), ("policy.wasm", b"\0asm")]).unwrap();
        let b = write_members([("manifest.json", &b"{}"[..]), ("policy.wasm", b"\0asm")]).unwrap();
        assert_eq!(a, b);
        let m = read_members(&a, &ArchiveLimits::default()).unwrap();
        assert_eq!(m["policy.wasm"], b"\0asm");
    }

    #[test]
    fn parent_and_absolute_paths_are_refused() {
        for name in ["../evil.json", "/etc/evil", "dir/policy.wasm", ".hidden"] {
            let bytes = hostile(name, tar::EntryType::Regular, b"x");
            let e = read_members(&bytes, &ArchiveLimits::default()).unwrap_err();
            assert!(matches!(e, BundleError::UnsafePath(_)), "{name}: {e}");
        }
    }

    #[test]
    fn links_and_directories_are_refused() {
        let e = read_members(
            &hostile("policy.wasm", tar::EntryType::Symlink, b""),
            &ArchiveLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = read_members(
            &hostile("policy.wasm", tar::EntryType::Link, b""),
            &ArchiveLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("hard link"), "{e}");
        let e = read_members(
            &hostile("dir", tar::EntryType::Directory, b""),
            &ArchiveLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn an_oversized_member_is_refused_before_it_is_read() {
        let limits = ArchiveLimits {
            max_member_bytes: 16,
            ..ArchiveLimits::default()
        };
        let bytes = write_members([("policy.wasm", &[0u8; 17][..])]).unwrap();
        let e = read_members(&bytes, &limits).unwrap_err();
        assert!(e.to_string().contains("over the 16-byte limit"), "{e}");
    }

    #[test]
    fn duplicate_members_and_non_archives_are_refused() {
        let bytes = write_members([("a.json", &b"1"[..]), ("a.json", b"2")]).unwrap();
        assert!(matches!(
            read_members(&bytes, &ArchiveLimits::default()),
            Err(BundleError::DuplicateMember(_))
        ));
        assert!(matches!(
            read_members(b"not a bundle", &ArchiveLimits::default()),
            Err(BundleError::Archive(_))
        ));
    }
}

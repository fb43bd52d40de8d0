//! The bundle file: a gzip-compressed tar archive, read entirely in memory.
//!
//! Reading never trusts the archive. Nothing is extracted to disk, so a
//! hostile member name cannot write anywhere; and before a byte of a member
//! is read, its name, type and declared size are checked against
//! [`ArchiveLimits`]. Reading stops at the first entry that breaks a rule.
//!
//! Memory is bounded before anything is parsed:
//!
//! - the decompressed stream is read through a byte limit
//!   ([`ArchiveLimits::max_decompressed_bytes`]), so a small file cannot
//!   inflate without end;
//! - the tar reader runs in raw mode, so every 512-byte header reaches this
//!   module before its data is read. In its default mode the `tar` crate
//!   reads GNU long-name/long-link (`L`/`K`) and PAX (`x`) entries whole
//!   into memory while iterating, before the caller sees the member they
//!   describe: one header declaring a 1 GiB long name was enough to make
//!   `stagegate verify` allocate gigabytes;
//! - extension entries (`L`, `K`, `x`, `g`) are refused outright, whatever
//!   their size. A bundle never needs them: member names are at most 100
//!   characters of `[A-Za-z0-9._-]` ([`is_safe_name`]), which the plain
//!   ustar name field holds, sizes fit the header, and [`write_members`]
//!   writes no extensions. Refusing them also means no PAX `size` record
//!   can make the tar reader disagree with the header we checked;
//! - every entry counts against [`ArchiveLimits::max_members`], and each
//!   member's declared size against the per-member and total limits,
//!   before its data is allocated.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
use std::rc::Rc;

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
        Self::DEFAULT
    }
}

/// A tar block: every header is one, every member is padded to a multiple.
const BLOCK: u64 = 512;

impl ArchiveLimits {
    /// The limits every reader uses unless told otherwise.
    pub const DEFAULT: ArchiveLimits = ArchiveLimits {
        max_archive_bytes: 64 << 20,
        max_member_bytes: 32 << 20,
        max_total_bytes: 96 << 20,
        max_members: 32,
    };

    /// The most decompressed bytes an archive within these limits can
    /// need: the members' data, and per entry (one more than the member
    /// limit, to see that it is exceeded) a header block and at most one
    /// block of padding, and the end-of-archive blocks. Reading stops here
    /// whatever the archive declares.
    pub fn max_decompressed_bytes(&self) -> u64 {
        let entries = self.max_members as u64 + 1;
        self.max_total_bytes
            .saturating_add(entries.saturating_mul(2 * BLOCK))
            .saturating_add(2 * BLOCK)
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

/// A reader that fails once more than `limit` bytes have passed through
/// it. The count is shared so that the caller can tell this failure from
/// the tar reader's own after the tar reader has wrapped it.
struct Capped<R> {
    inner: R,
    limit: u64,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let used = self.read.get();
        if used > self.limit {
            return Err(std::io::Error::other("decompressed size limit reached"));
        }
        // Ask for at most one byte past the limit: enough to see it crossed.
        let room = (self.limit - used).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read.set(used + n as u64);
        if self.read.get() > self.limit {
            return Err(std::io::Error::other("decompressed size limit reached"));
        }
        Ok(n)
    }
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
    let inflated = Rc::new(Cell::new(0u64));
    let cap = limits.max_decompressed_bytes();
    let stream = Capped {
        inner: GzDecoder::new(bytes),
        limit: cap,
        read: inflated.clone(),
    };
    // Any read failure past the cap is the cap's, whatever the tar reader
    // made of it.
    let fail = |context: String, e: std::io::Error| {
        if inflated.get() > cap {
            BundleError::DecompressedTooLarge { limit: cap }
        } else {
            BundleError::Archive(format!("{context}{e}"))
        }
    };
    let mut archive = tar::Archive::new(stream);
    let mut members = BTreeMap::new();
    let mut total: u64 = 0;
    // Raw: extension entries come to us as entries, unread (see above).
    let entries = archive
        .entries()
        .map_err(|e| fail(String::new(), e))?
        .raw(true);
    for (index, entry) in entries.enumerate() {
        let entry_no = index + 1;
        let mut entry = entry.map_err(|e| fail(format!("entry #{entry_no}: "), e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        let declared = entry
            .header()
            .size()
            .map_err(|e| fail(format!("entry #{entry_no} ('{name}'): "), e))?;
        if index >= limits.max_members {
            return Err(BundleError::TooManyMembers {
                entry: entry_no,
                name,
                limit: limits.max_members,
            });
        }
        if let Some(what) = extension_kind(kind) {
            return Err(BundleError::ExtensionEntry {
                entry: entry_no,
                kind: what,
                size: declared,
            });
        }
        if !kind.is_file() {
            return Err(BundleError::NotAFile {
                name,
                kind: entry_kind(kind).to_string(),
            });
        }
        if !is_safe_name(&name) {
            return Err(BundleError::UnsafePath(name));
        }
        if members.contains_key(&name) {
            return Err(BundleError::DuplicateMember(name));
        }
        if declared > limits.max_member_bytes {
            return Err(BundleError::MemberTooLarge {
                name,
                size: declared,
                limit: limits.max_member_bytes,
            });
        }
        total = total.saturating_add(declared);
        if total > limits.max_total_bytes {
            return Err(BundleError::TotalTooLarge {
                name,
                total,
                limit: limits.max_total_bytes,
            });
        }
        // Bounded by the checks above: at most `max_member_bytes`, and all
        // members together at most `max_total_bytes`.
        let mut data = Vec::with_capacity(declared as usize);
        (&mut entry)
            .take(limits.max_member_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|e| fail(format!("reading '{name}': "), e))?;
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

/// What an extension entry is, for the error that refuses it.
fn extension_kind(kind: tar::EntryType) -> Option<&'static str> {
    if kind.is_gnu_longname() {
        Some("GNU long-name entry (type 'L')")
    } else if kind.is_gnu_longlink() {
        Some("GNU long-link entry (type 'K')")
    } else if kind.is_pax_local_extensions() {
        Some("PAX extended header (type 'x')")
    } else if kind.is_pax_global_extensions() {
        Some("PAX global header (type 'g')")
    } else {
        None
    }
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

    /// Live heap bytes allocated by the current thread, and their peak:
    /// how the tests below prove that a refusal comes before the buffer.
    mod heap {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        struct Tracking;

        thread_local! {
            static LIVE: Cell<isize> = const { Cell::new(0) };
            static PEAK: Cell<isize> = const { Cell::new(0) };
        }

        fn note(delta: isize) {
            let _ = LIVE.try_with(|live| {
                let now = live.get() + delta;
                live.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }

        // SAFETY: every method forwards to the system allocator with the
        // caller's arguments unchanged; the bookkeeping touches only
        // const-initialised thread-locals, which never allocate.
        unsafe impl GlobalAlloc for Tracking {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
                let p = unsafe { System.alloc(layout) };
                if !p.is_null() {
                    note(layout.size() as isize);
                }
                p
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                note(-(layout.size() as isize));
                // SAFETY: forwarded as is; `ptr` came from `System` above.
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
                // SAFETY: forwarded as is; `ptr` came from `System` above.
                let p = unsafe { System.realloc(ptr, layout, new) };
                if !p.is_null() {
                    note(new as isize - layout.size() as isize);
                }
                p
            }
        }

        #[global_allocator]
        static TRACKING: Tracking = Tracking;

        /// Runs `f` and returns its result with the most heap bytes it held
        /// at once on this thread, beyond what was live before.
        pub(crate) fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
            let start = LIVE.with(Cell::get);
            PEAK.with(|p| p.set(start));
            let r = f();
            let peak = PEAK.with(Cell::get);
            (r, (peak - start).max(0) as usize)
        }
    }

    /// A gzip'd tar whose first entry has type `kind` and declares `size`
    /// bytes, all present (zeros compress to almost nothing), followed by a
    /// regular member: the shape of the bombs an attacker would send.
    fn extension_bomb(kind: u8, size: u64) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::new(kind));
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
        // Non-zero bytes, so the data is not mistaken for the end marker.
        let chunk = vec![b'a'; 1 << 20];
        let mut left = size.div_ceil(512) * 512;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            std::io::Write::write_all(&mut gz, &chunk[..n]).unwrap();
            left -= n as u64;
        }
        let mut b = tar::Builder::new(gz);
        let mut m = tar::Header::new_ustar();
        m.set_size(2);
        m.set_mode(0o644);
        b.append_data(&mut m, "manifest.json", &b"{}"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap()
    }

    /// Small limits so the bounds show in small tests.
    fn small() -> ArchiveLimits {
        ArchiveLimits {
            max_archive_bytes: 1 << 20,
            max_member_bytes: 64 << 10,
            max_total_bytes: 128 << 10,
            max_members: 8,
        }
    }

    /// What the reader may hold at once under [`small`]: the members, plus
    /// the gzip and tar readers' own buffers.
    const SMALL_BOUND: usize = (128 << 10) + (256 << 10);

    #[test]
    fn long_name_bomb_is_refused_before_it_is_buffered() {
        let bomb = extension_bomb(b'L', 16 << 20);
        let (r, peak) = heap::peak_of(|| read_members(&bomb, &small()));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("entry #1") && e.contains("long-name") && e.contains("16777216"),
            "{e}"
        );
        assert!(peak < SMALL_BOUND, "held {peak} bytes at once");
    }

    #[test]
    fn pax_bomb_is_refused_before_it_is_buffered() {
        for (kind, what) in [(b'x', "PAX extended header"), (b'g', "PAX global header")] {
            let bomb = extension_bomb(kind, 16 << 20);
            let (r, peak) = heap::peak_of(|| read_members(&bomb, &small()));
            let e = r.unwrap_err().to_string();
            assert!(e.contains("entry #1") && e.contains(what), "{e}");
            assert!(peak < SMALL_BOUND, "{what}: held {peak} bytes at once");
        }
    }

    #[test]
    fn long_link_entries_are_refused_even_when_small() {
        let e = read_members(&extension_bomb(b'K', 20), &small())
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry #1") && e.contains("long-link"), "{e}");
    }

    #[test]
    fn many_entries_bomb_is_refused_at_the_first_entry_past_the_limit() {
        let names: Vec<String> = (0..5000).map(|i| format!("m{i}.json")).collect();
        let bomb = write_members(names.iter().map(|n| (n.as_str(), &b""[..]))).unwrap();
        let (r, peak) = heap::peak_of(|| read_members(&bomb, &small()));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("entry #9") && e.contains("'m8.json'") && e.contains("8 members"),
            "{e}"
        );
        assert!(peak < SMALL_BOUND, "held {peak} bytes at once");
    }

    #[test]
    fn members_over_the_total_are_refused_naming_the_member_that_crossed_it() {
        let chunk = vec![1u8; 60 << 10];
        let bytes = write_members([
            ("a.wasm", chunk.as_slice()),
            ("b.wasm", chunk.as_slice()),
            ("c.wasm", chunk.as_slice()),
        ])
        .unwrap();
        let e = read_members(&bytes, &small()).unwrap_err().to_string();
        assert!(
            e.contains("'c.wasm'") && e.contains("131072-byte limit"),
            "{e}"
        );
    }

    #[test]
    fn decompression_stops_at_the_cap_whatever_the_stream_holds() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        std::io::Write::write_all(&mut gz, &vec![7u8; 8 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let read = Rc::new(Cell::new(0));
        let mut capped = Capped {
            inner: GzDecoder::new(bomb.as_slice()),
            limit: 1 << 20,
            read: read.clone(),
        };
        let mut sink = Vec::new();
        let e = capped.read_to_end(&mut sink).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        assert_eq!(read.get(), (1 << 20) + 1);
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
    fn oversized_member_bomb_is_refused_before_it_is_buffered() {
        // A regular member declaring 16 MiB (and holding it) under a 64 KiB limit.
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let mut h = tar::Header::new_ustar();
        h.set_path("policy.wasm").unwrap();
        h.set_size(16 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
        std::io::Write::write_all(&mut gz, &vec![b'a'; 16 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let (r, peak) = heap::peak_of(|| read_members(&bomb, &small()));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("'policy.wasm'") && e.contains("over the 65536-byte limit"),
            "{e}"
        );
        assert!(peak < SMALL_BOUND, "held {peak} bytes at once");
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

    /// Does a refusal say what it refuses: an entry, a member, a limit, or
    /// that the bytes are not a bundle archive at all?
    fn names_something(message: &str) -> bool {
        message.contains("entry #")
            || message.contains("member '")
            || message.contains("limit")
            || message.starts_with("bundle archive is not a valid gzip-compressed tar file: ")
    }

    /// What a successful read must satisfy under `limits`.
    fn within(members: &BTreeMap<String, Vec<u8>>, limits: &ArchiveLimits) -> bool {
        members.len() <= limits.max_members
            && members.keys().all(|n| is_safe_name(n))
            && members
                .values()
                .all(|d| d.len() as u64 <= limits.max_member_bytes)
            && members.values().map(|d| d.len() as u64).sum::<u64>() <= limits.max_total_bytes
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One raw entry: type byte, name bytes, declared size, bytes of
        /// data actually present, GNU or ustar header, correct checksum.
        type RawEntry = (u8, Vec<u8>, u64, usize, bool, bool);

        fn entry() -> impl Strategy<Value = RawEntry> {
            (
                prop_oneof![
                    Just(b'0'),
                    Just(b'\0'),
                    Just(b'L'),
                    Just(b'K'),
                    Just(b'x'),
                    Just(b'g'),
                    Just(b'5'),
                    Just(b'2'),
                    Just(b'S'),
                    any::<u8>(),
                ],
                prop_oneof![
                    proptest::collection::vec(b'a'..=b'z', 1..12),
                    proptest::collection::vec(any::<u8>(), 0..100),
                ],
                prop_oneof![
                    0u64..2048,
                    0u64..(256 << 10),
                    Just(1u64 << 20),
                    Just(1u64 << 30),
                    Just(u64::MAX >> 2),
                ],
                // Bytes present: a few, or all that is declared (up to 1 MiB).
                prop_oneof![0usize..4096, Just(usize::MAX)],
                any::<bool>(),
                prop::bool::weighted(0.95),
            )
        }

        fn archive(entries: &[RawEntry], end: bool) -> Vec<u8> {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            for (kind, name, declared, present, gnu, cksum) in entries {
                let mut h = if *gnu {
                    tar::Header::new_gnu()
                } else {
                    tar::Header::new_ustar()
                };
                h.set_entry_type(tar::EntryType::new(*kind));
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
                h.set_size(*declared);
                h.set_mode(0o644);
                if *cksum {
                    h.set_cksum();
                }
                std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
                let present = (*present).min(*declared.min(&(1 << 20)) as usize);
                let data = vec![b'z'; present.div_ceil(512) * 512];
                std::io::Write::write_all(&mut gz, &data).unwrap();
            }
            if end {
                std::io::Write::write_all(&mut gz, &[0u8; 1024]).unwrap();
            }
            gz.finish().unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn arbitrary_bytes_are_refused_by_name_within_the_memory_bound(
                bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            ) {
                let (r, peak) = heap::peak_of(|| read_members(&bytes, &small()));
                prop_assert!(peak < SMALL_BOUND, "held {} bytes at once", peak);
                match r {
                    Ok(m) => prop_assert!(within(&m, &small())),
                    Err(e) => prop_assert!(names_something(&e.to_string()), "{}", e),
                }
            }

            #[test]
            fn arbitrary_small_archives_are_read_or_refused_by_name_within_the_memory_bound(
                entries in proptest::collection::vec(entry(), 0..12),
                end in any::<bool>(),
            ) {
                let bytes = archive(&entries, end);
                let (r, peak) = heap::peak_of(|| read_members(&bytes, &small()));
                prop_assert!(peak < SMALL_BOUND, "held {} bytes at once", peak);
                match r {
                    Ok(m) => prop_assert!(within(&m, &small())),
                    Err(e) => prop_assert!(names_something(&e.to_string()), "{}", e),
                }
            }
        }
    }
}

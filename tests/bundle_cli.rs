//! Bundles through the CLI: keygen, build, sign, verify (k of n), inspect,
//! and every way a tampered or hostile archive is refused.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use stagegate::bundle::archive::{ArchiveLimits, read_members, write_members};
use support::{SignedBundle, run, text};

/// Runs `stagegate verify FILE --trust trust/ [extra…]` in the bundle's dir.
fn verify(sb: &SignedBundle, file: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", file, "--trust", "trust"];
    args.extend_from_slice(extra);
    let out = run(sb.dir.path(), &args, None);
    let (stdout, stderr) = text(&out);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// Rewrites the signed bundle's members with `edit` into `name`.
fn tamper(sb: &SignedBundle, name: &str, edit: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) {
    let bytes = std::fs::read(sb.path("ref.bundle")).unwrap();
    let mut members = read_members(&bytes, &ArchiveLimits::default()).unwrap();
    edit(&mut members);
    let out = write_members(members.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
    std::fs::write(sb.path(name), out).unwrap();
}

/// An archive with one raw member, bypassing every safe writer.
fn raw_archive(path: &Path, name: &str, kind: tar::EntryType, data: &[u8]) {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
    std::fs::write(path, b.into_inner().unwrap().finish().unwrap()).unwrap();
}

#[test]
fn a_signed_bundle_verifies_against_its_trust_store() {
    let sb = SignedBundle::new();
    let (code, out) = verify(&sb, "ref.bundle", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified iso42001-reference 1.1.0"), "{out}");
    assert!(out.contains("signed by 1 of 1 required: dev"), "{out}");
}

#[test]
fn keygen_build_sign_and_verify_work_end_to_end_with_two_signers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = support::root().join("policies/iso42001");
    for k in ["alice", "bob"] {
        let out = run(d, &["keygen", "--out", &format!("keys/{k}")], None);
        assert!(out.status.success(), "{:?}", text(&out));
        std::fs::create_dir_all(d.join("trust")).unwrap();
        std::fs::copy(
            d.join(format!("keys/{k}.pub")),
            d.join(format!("trust/{k}.pub")),
        )
        .unwrap();
    }
    let out = run(
        d,
        &["build", policy.to_str().unwrap(), "--out", "p.bundle"],
        None,
    );
    assert!(out.status.success(), "{:?}", text(&out));

    let (stdout, stderr) = text(&run(d, &["verify", "p.bundle", "--trust", "trust"], None));
    assert!(stderr.contains("unsigned"), "{stdout}{stderr}");

    assert!(
        run(d, &["sign", "p.bundle", "--key", "keys/alice"], None)
            .status
            .success()
    );
    let out = run(
        d,
        &[
            "verify",
            "p.bundle",
            "--trust",
            "trust",
            "--min-signatures",
            "2",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("1 valid signature(s) by trusted keys, 2 required"),
        "{:?}",
        text(&out)
    );

    assert!(
        run(d, &["sign", "p.bundle", "--key", "keys/bob"], None)
            .status
            .success()
    );
    let out = run(
        d,
        &[
            "verify",
            "p.bundle",
            "--trust",
            "trust",
            "--min-signatures",
            "2",
        ],
        None,
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("signed by 2 of 2 required"),
        "{:?}",
        text(&out)
    );

    let (stdout, _) = text(&run(d, &["inspect", "p.bundle", "--trust", "trust"], None));
    assert!(
        stdout.contains("wit world   stagegate:policy@1.1.0 (runs on this host)"),
        "{stdout}"
    );
    assert!(stdout.contains("policy.wasm"), "{stdout}");
    assert!(stdout.contains("trusted as 'alice'"), "{stdout}");
    assert!(stdout.contains("signatures  2"), "{stdout}");
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(dir.path(), &["keygen", "--out", "k"], None)
            .status
            .success()
    );
    let out = run(dir.path(), &["keygen", "--out", "k"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("refusing to overwrite"));
}

#[test]
fn one_changed_byte_of_the_component_is_refused_naming_the_file() {
    let sb = SignedBundle::new();
    tamper(&sb, "t.bundle", |m| {
        let wasm = m.get_mut("policy.wasm").unwrap();
        let i = wasm.len() / 2;
        wasm[i] ^= 0x01;
    });
    let (code, out) = verify(&sb, "t.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("file 'policy.wasm' does not match the manifest"),
        "{out}"
    );
}

#[test]
fn one_changed_byte_of_the_params_is_refused_naming_the_file() {
    let sb = SignedBundle::new();
    tamper(&sb, "t.bundle", |m| {
        let p = m.get_mut("params.json").unwrap();
        let i = p.iter().position(|b| *b == b'5').unwrap();
        p[i] = b'9';
    });
    let (code, out) = verify(&sb, "t.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("file 'params.json' does not match the manifest"),
        "{out}"
    );
}

#[test]
fn an_added_file_is_refused() {
    let sb = SignedBundle::new();
    tamper(&sb, "t.bundle", |m| {
        m.insert("extra.json".into(), b"{}".to_vec());
    });
    let (code, out) = verify(&sb, "t.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("'extra.json' is in the bundle but not listed"),
        "{out}"
    );
}

#[test]
fn a_removed_file_is_refused() {
    let sb = SignedBundle::new();
    tamper(&sb, "t.bundle", |m| {
        m.remove("controls.json");
    });
    let (code, out) = verify(&sb, "t.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("'controls.json' is listed in the manifest but missing"),
        "{out}"
    );
}

#[test]
fn an_edited_manifest_breaks_the_signature() {
    let sb = SignedBundle::new();
    tamper(&sb, "t.bundle", |m| {
        let text = String::from_utf8(m["manifest.json"].clone()).unwrap();
        m.insert(
            "manifest.json".into(),
            text.replace("\"1.1.0\"", "\"9.0.0\"").into_bytes(),
        );
    });
    let (code, out) = verify(&sb, "t.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify"), "{out}");
}

#[test]
fn a_malformed_manifest_is_refused_with_its_parse_error() {
    let sb = SignedBundle::new();
    tamper(&sb, "t.bundle", |m| {
        m.insert(
            "manifest.json".into(),
            br#"{"format": 1, "name": 7}"#.to_vec(),
        );
    });
    let (code, out) = verify(&sb, "t.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("manifest.json is invalid: at name"), "{out}");
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused_naming_the_key() {
    let sb = SignedBundle::new();
    let mut bundle = support::reference_bundle().clone();
    let (stranger, _) = stagegate::bundle::keys::generate(&sb.path("stranger")).unwrap();
    let id = bundle.sign(&stranger);
    bundle.write(&sb.path("s.bundle")).unwrap();
    let (code, out) = verify(&sb, "s.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not in the trust store"), "{out}");
    assert!(out.contains(&id), "{out}");
}

#[test]
fn archives_with_escaping_paths_links_or_huge_members_are_refused_and_write_nothing() {
    let sb = SignedBundle::new();
    let cases: [(&str, tar::EntryType, &str); 5] = [
        (
            "../escaped.json",
            tar::EntryType::Regular,
            "outside the bundle root",
        ),
        (
            "/tmp/stagegate-escaped.json",
            tar::EntryType::Regular,
            "outside the bundle root",
        ),
        ("policy.wasm", tar::EntryType::Symlink, "symbolic link"),
        ("policy.wasm", tar::EntryType::Link, "hard link"),
        ("sub", tar::EntryType::Directory, "directory"),
    ];
    for (i, (name, kind, expect)) in cases.iter().enumerate() {
        let file = format!("h{i}.bundle");
        raw_archive(&sb.path(&file), name, *kind, b"{}");
        for cmd in ["verify", "inspect"] {
            let args: Vec<&str> = if cmd == "verify" {
                vec![cmd, &file, "--trust", "trust"]
            } else {
                vec![cmd, &file]
            };
            let out = run(sb.dir.path(), &args, None);
            let (stdout, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{name}: {stdout}{stderr}");
            assert!(stderr.contains(expect), "{name} via {cmd}: {stderr}");
        }
    }
    assert!(
        !sb.dir
            .path()
            .parent()
            .unwrap()
            .join("escaped.json")
            .exists()
    );
    assert!(!Path::new("/tmp/stagegate-escaped.json").exists());

    // A member over the 32 MiB cap is refused from its header alone.
    let big = vec![0u8; (32 << 20) + 1];
    let bytes = write_members([("policy.wasm", big.as_slice())]).unwrap();
    std::fs::write(sb.path("big.bundle"), bytes).unwrap();
    let (code, out) = verify(&sb, "big.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("over the 33554432-byte limit"), "{out}");
}

#[test]
fn a_bundle_for_another_wit_major_version_is_refused() {
    let sb = SignedBundle::new();
    let original = support::reference_bundle();
    let files: BTreeMap<String, Vec<u8>> = original
        .manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), original.file(&f.path).unwrap().to_vec()))
        .collect();
    let mut future = stagegate::bundle::Bundle::new(
        "iso42001-reference",
        semver::Version::new(2, 0, 0),
        "stagegate:policy@2.0.0",
        None,
        files,
    )
    .unwrap();
    let key = stagegate::bundle::keys::load_secret(&sb.path("keys/dev")).unwrap();
    future.sign(&key);
    future.write(&sb.path("future.bundle")).unwrap();
    let (code, out) = verify(&sb, "future.bundle", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("built for stagegate:policy@2.0.0"), "{out}");
    assert!(out.contains("major version 2 differs from 1"), "{out}");
}

//! The bundle lifecycle over HTTP: uploads that are refused leave the
//! active version serving; versions only move forward unless forced;
//! watched sources; hot swap under load; restart from the persisted copy.

use crate::support;

use std::time::Duration;

use stagegate::bundle::archive::{ArchiveLimits, read_members, write_members};
use support::high_risk_gate;
use support::load::Load;
use support::server::{Deployment, Server};

const NAME: &str = "iso42001-reference";

fn with_reference(tables: &str) -> Deployment {
    let d = Deployment::new(&format!(
        "[[bundles]]\nname = \"{NAME}\"\nfile = \"ref.bundle\"\ndefault = true\n{tables}"
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    d
}

/// The parts of a decision that must not depend on which request asked.
fn decision_fingerprint(s: &Server) -> serde_json::Value {
    let v = s
        .post_json("/v1/decisions/gate", None, &high_risk_gate())
        .json();
    serde_json::json!({"outcome": v["outcome"], "findings": v["findings"], "policy": v["policy"], "first_stage": v["first_stage"]})
}

#[test]
fn refused_uploads_leave_the_active_bundle_serving_identically() {
    let d = with_reference("");
    let s = d.start();
    let before = decision_fingerprint(&s);

    let good = d.reference("1.1.0");
    let tampered = {
        let mut m = read_members(&good, &ArchiveLimits::default()).unwrap();
        let w = m.get_mut("policy.wasm").unwrap();
        let n = w.len() - 10;
        w[n] ^= 0xff;
        write_members(m.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap()
    };
    let unsigned = d.bundle_from(
        support::reference_bundle(),
        NAME,
        "1.1.0",
        "stagegate:policy@1.0.0",
        false,
    );
    let future_wit = d.bundle_from(
        support::reference_bundle(),
        NAME,
        "1.1.0",
        "stagegate:policy@2.0.0",
        true,
    );
    let wrong_name = d.bundle_from(
        support::reference_bundle(),
        "other-policy",
        "1.1.0",
        "stagegate:policy@1.0.0",
        true,
    );
    let downgrade = d.reference("0.9.0");
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("tampered", tampered, 422, "does not match the manifest"),
        ("unsigned", unsigned, 422, "unsigned"),
        ("incompatible", future_wit, 422, "major version 2"),
        ("wrong name", wrong_name, 422, "named 'other-policy'"),
        ("downgrade", downgrade, 409, "lower than the active 1.0.0"),
        (
            "garbage",
            b"not a bundle at all".to_vec(),
            422,
            "not a valid gzip-compressed tar",
        ),
    ];
    for (what, bytes, status, reason) in cases {
        let r = s.put_bundle(NAME, None, &bytes, false);
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(r.body.contains(reason), "{what}: {}", r.body);
        let st = s.get(&format!("/v1/bundles/{NAME}"), None).json();
        assert!(
            st["last_rejection"]["reason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{what}: {st:#}"
        );
        assert_eq!(st["active"]["version"], "1.0.0", "{what}");
        assert_eq!(
            decision_fingerprint(&s),
            before,
            "{what} changed a decision"
        );
    }
    let m = s.get("/metrics", None).body;
    assert!(
        m.contains(&format!(
            "stagegate_bundle_activation_failures_total{{bundle=\"{NAME}\"}} 6"
        )),
        "{m}"
    );

    // And a good one goes in.
    let r = s.put_bundle(NAME, None, &good, false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["previous_version"], "1.0.0");
    assert_eq!(decision_fingerprint(&s)["policy"]["version"], "1.1.0");
}

#[test]
fn an_under_signed_bundle_is_refused_when_two_signatures_are_required() {
    let d = Deployment::new("");
    std::fs::write(
        d.config(),
        std::fs::read_to_string(d.config())
            .unwrap()
            .replace("[trust]\n", "[trust]\nmin_signatures = 2\n"),
    )
    .unwrap();
    let s = d.start();
    let r = s.put_bundle(NAME, None, &d.reference("1.0.0"), false);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body
            .contains("1 valid signature(s) by trusted keys, 2 required"),
        "{}",
        r.body
    );
    assert_eq!(s.get("/readyz", None).status, 503);
}

#[test]
fn a_downgrade_needs_force_and_is_logged() {
    let d = with_reference("");
    let s = d.start();
    assert_eq!(
        s.put_bundle(NAME, None, &d.reference("2.0.0"), false)
            .status,
        200
    );
    let older = d.reference("1.5.0");
    assert_eq!(s.put_bundle(NAME, None, &older, false).status, 409);
    let r = s.put_bundle(NAME, None, &older, true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(decision_fingerprint(&s)["policy"]["version"], "1.5.0");
    let st = s.get(&format!("/v1/bundles/{NAME}"), None).json();
    assert_eq!(st["active"]["forced"], true);
    support::wait_until("the force log line", support::HANG, || {
        s.logs().contains("force=true")
    });
    // Same version, different content: refused too.
    let same_version_other_bytes = d.bundle_from(
        support::hostile_bundle(),
        NAME,
        "1.5.0",
        "stagegate:policy@1.0.0",
        true,
    );
    let r = s.put_bundle(NAME, None, &same_version_other_bytes, false);
    assert_eq!(r.status, 409, "{}", r.body);
    // Re-uploading the active bytes is a no-op.
    let r = s.put_bundle(NAME, None, &older, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["unchanged"], true);
}

#[test]
fn a_new_version_in_a_watched_directory_or_file_is_activated() {
    let d = Deployment::new(&format!(
        "[limits]\nwatch_interval_ms = 100\n[[bundles]]\nname = \"{NAME}\"\ndir = \"incoming\"\ndefault = true\n\
         [[bundles]]\nname = \"second\"\nfile = \"second.bundle\"\n"
    ));
    std::fs::create_dir_all(d.path("incoming")).unwrap();
    std::fs::write(d.path("incoming/a.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    assert_eq!(decision_fingerprint(&s)["policy"]["version"], "1.0.0");
    std::fs::write(d.path("incoming/b.bundle"), d.reference("1.2.0")).unwrap();
    std::fs::write(d.path("incoming/c.bundle"), d.reference("1.1.0")).unwrap();
    support::wait_until("1.2.0 from the directory", support::HANG, || {
        decision_fingerprint(&s)["policy"]["version"] == "1.2.0"
    });
    // A file source that appears after start is picked up too.
    let second = d.bundle_from(
        support::reference_bundle(),
        "second",
        "3.0.0",
        "stagegate:policy@1.0.0",
        true,
    );
    std::fs::write(d.path("second.bundle"), second).unwrap();
    support::wait_until("the second bundle", support::HANG, || {
        let v = s.post_json("/v1/decisions/gate?bundle=second", None, &high_risk_gate());
        v.status == 200 && v.json()["policy"]["version"] == "3.0.0"
    });
}

#[test]
fn hot_swap_under_load_fails_no_request_and_every_answer_names_a_real_version() {
    let d = with_reference("[limits]\nconcurrency = 512\n");
    let s = d.start();
    let versions: Vec<String> = (1..=20).map(|i| format!("1.0.{i}")).collect();
    let uploads: Vec<Vec<u8>> = versions.iter().map(|v| d.reference(v)).collect();
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    let url = s.url("/v1/decisions/gate");
    let load = Load::start(4, url, body, |v| {
        assert_eq!(v["outcome"], "allow", "{v:#}");
        v["policy"]["version"].as_str().unwrap().to_string()
    });
    for (v, bytes) in versions.iter().zip(&uploads) {
        let r = s.put_bundle(NAME, None, bytes, false);
        assert_eq!(r.status, 200, "upload {v}: {}", r.body);
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(200));
    let report = load.stop();
    report.assert_none_failed(100);
    for client in &report.seen {
        let mut last = semver::Version::new(1, 0, 0);
        for v in client {
            let version = semver::Version::parse(v).unwrap();
            // One client's sequential requests never go back in time.
            assert!(version >= last, "saw {version} after {last}");
            last = version;
        }
    }
    let seen = report.all_seen();
    for v in &seen {
        assert!(
            v == "1.0.0" || versions.contains(v),
            "unexpected version {v}"
        );
    }
    assert!(seen.contains("1.0.20"), "{seen:?}");
    assert!(
        seen.len() > 2,
        "saw too few versions to prove swapping under load: {seen:?}"
    );
}

#[test]
fn after_a_crash_the_last_good_bundle_serves_with_its_source_unreachable() {
    let d = with_reference("");
    let s = d.start();
    assert_eq!(
        s.put_bundle(NAME, None, &d.reference("1.4.0"), false)
            .status,
        200
    );
    let digest = s.get("/v1/bundles", None).json()["bundles"][0]["digest"].clone();
    s.kill();
    std::fs::remove_file(d.path("ref.bundle")).unwrap();

    let s = d.start();
    let v = decision_fingerprint(&s);
    assert_eq!(v["outcome"], "allow");
    assert_eq!(v["policy"]["version"], "1.4.0");
    assert_eq!(v["policy"]["digest"], digest);
    let b = &s.get("/v1/bundles", None).json()["bundles"][0];
    assert_eq!(b["origin"]["kind"], "persisted");
    assert_eq!(
        b["compiled_from_cache"], true,
        "restart loads precompiled code: {b:#}"
    );
}

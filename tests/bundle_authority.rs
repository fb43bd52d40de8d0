//! Who may change which bundle serves, and what survives a restart:
//! `force=true` needs the `bundle_admin` role; the version floor is
//! persisted and compares by semver precedence; a refused upload creates no
//! bundle; the default bundle stays put; the compiled-component cache
//! trusts only entries private to the service; development signing keys
//! stay off non-loopback listeners.

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::high_risk_gate;
use support::server::{Deployment, Server};

const NAME: &str = "iso42001-reference";

/// A `[[tokens]]` entry for `token`.
fn token_entry(name: &str, token: &str, roles: &str) -> String {
    format!(
        "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = {roles}\n",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

fn put(s: &Server, path: &str, token: Option<&str>, bytes: &[u8]) -> support::server::Reply {
    s.send(
        "PUT",
        path,
        token,
        Some("application/octet-stream"),
        Some(bytes),
    )
}

fn active_version(s: &Server, token: Option<&str>) -> serde_json::Value {
    s.get(&format!("/v1/bundles/{NAME}"), token).json()["active"]["version"].clone()
}

/// The bundle configured by name only: it arrives by upload.
fn upload_only() -> Deployment {
    Deployment::new(&format!("[[bundles]]\nname = \"{NAME}\"\n"))
}

#[test]
fn force_needs_the_bundle_admin_role_and_a_publisher_gets_403_naming_it() {
    let d = upload_only();
    let config = std::fs::read_to_string(d.config()).unwrap()
        + &token_entry("release-bot", "pub-token", "[\"publisher\", \"auditor\"]")
        + &token_entry(
            "policy-owner",
            "admin-token",
            "[\"bundle_admin\", \"auditor\"]",
        );
    std::fs::write(d.config(), config).unwrap();
    let s = d.start();
    let publisher = Some("pub-token");
    let admin = Some("admin-token");
    let path = format!("/v1/bundles/{NAME}");
    assert_eq!(put(&s, &path, publisher, &d.reference("2.0.0")).status, 200);

    let older = d.reference("1.5.0");
    let r = put(&s, &format!("{path}?force=true"), publisher, &older);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("bundle_admin"), "{}", r.body);
    assert_eq!(active_version(&s, admin), "2.0.0");

    let r = put(
        &s,
        &format!("{path}?force=true&reason=CVE-2026-1%20in%202.0.0"),
        admin,
        &older,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["forced_over"], "2.0.0");
    assert_eq!(active_version(&s, admin), "1.5.0");
    // The forced activation reaches the subscriber as a typed event.
    support::wait_until("the forced-activation event", support::HANG, || {
        s.logs().lines().any(|l| {
            l.contains("forced bundle activation")
                && l.contains("\"actor\":\"policy-owner\"")
                && l.contains("\"from_version\":\"2.0.0\"")
                && l.contains("\"to_version\":\"1.5.0\"")
                && l.contains("CVE-2026-1 in 2.0.0")
        })
    });
    // ...and is an entry of the decision log's hash chain, which still
    // verifies.
    let database = format!("sqlite://{}", d.path("data/stagegate.db").display());
    support::wait_until("the forced activation in the chain", support::HANG, || {
        let out = support::run(
            d.dir.path(),
            &["audit", "verify", "--database", &database],
            None,
        );
        let (o, _) = support::text(&out);
        out.status.success() && o.contains("decision log verified: 1 entries")
    });
    let entry = forced_entry(&database);
    assert_eq!(entry.0, "policy-owner");
    assert!(
        entry.1.contains("\"from_version\":\"2.0.0\"")
            && entry.1.contains("\"to_version\":\"1.5.0\"")
            && entry.1.contains("CVE-2026-1 in 2.0.0"),
        "{}",
        entry.1
    );
}

/// The (actor, detail) of the forced activation logged in `database`.
fn forced_entry(database: &str) -> (String, String) {
    let database = database.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use sqlx::Row;
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&database)
                .await
                .unwrap();
            let row = sqlx::query(
                "SELECT actor, request FROM decision_log WHERE kind = 'bundle.forced_activation'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            (
                row.try_get("actor").unwrap(),
                row.try_get("request").unwrap(),
            )
        })
}

#[test]
fn the_version_floor_survives_a_restart_without_the_persisted_bundle() {
    let d = upload_only();
    let s = d.start();
    let path = format!("/v1/bundles/{NAME}");
    assert_eq!(put(&s, &path, None, &d.reference("2.0.0")).status, 200);
    s.kill();
    std::fs::remove_file(d.path(&format!("data/bundles/{NAME}/active.bundle"))).unwrap();

    let s = d.start();
    assert_eq!(active_version(&s, None), serde_json::Value::Null);
    let r = put(&s, &path, None, &d.reference("1.5.0"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("lower than the version floor"),
        "{}",
        r.body
    );
    assert!(r.body.contains("2.0.0"), "{}", r.body);

    // A forced downgrade moves the floor down, and that survives too.
    assert_eq!(
        put(
            &s,
            &format!("{path}?force=true"),
            None,
            &d.reference("1.5.0")
        )
        .status,
        200
    );
    s.kill();
    let s = d.start();
    assert_eq!(active_version(&s, None), "1.5.0");
    let r = put(&s, &path, None, &d.reference("1.4.0"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("1.5.0"), "{}", r.body);
    assert_eq!(put(&s, &path, None, &d.reference("1.6.0")).status, 200);
}

#[test]
fn build_metadata_is_not_a_newer_version() {
    let d = upload_only();
    let s = d.start();
    let path = format!("/v1/bundles/{NAME}");
    assert_eq!(put(&s, &path, None, &d.reference("1.0.0+a")).status, 200);
    let r = put(&s, &path, None, &d.reference("1.0.0+b"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body
            .contains("build metadata does not make a version newer"),
        "{}",
        r.body
    );
    assert_eq!(active_version(&s, None), "1.0.0+a");
}

#[test]
fn a_rejected_upload_of_a_new_name_creates_no_bundle() {
    let d = upload_only();
    let s = d.start();
    assert_eq!(
        put(
            &s,
            &format!("/v1/bundles/{NAME}"),
            None,
            &d.reference("1.0.0")
        )
        .status,
        200
    );
    let r = put(&s, "/v1/bundles/other", None, b"not a bundle");
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(s.get("/v1/bundles/other", None).status, 404);
    let names: Vec<_> = s.get("/v1/bundles", None).json()["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(names, [NAME]);
    // Not even a metric series.
    let metrics = s.get("/metrics", None).body;
    assert!(!metrics.contains("bundle=\"other\""), "{metrics}");
}

#[test]
fn with_no_bundle_configured_the_first_activated_stays_the_default() {
    let d = Deployment::new("");
    let s = d.start();
    assert_eq!(
        put(
            &s,
            &format!("/v1/bundles/{NAME}"),
            None,
            &d.reference("1.0.0")
        )
        .status,
        200
    );
    let decide = |s: &Server| s.post_json("/v1/decisions/gate", None, &high_risk_gate());
    assert_eq!(decide(&s).status, 200);

    // A refused upload of a new name changes nothing.
    assert_eq!(put(&s, "/v1/bundles/other", None, b"garbage").status, 422);
    let r = decide(&s);
    assert_eq!(r.status, 200, "{}", r.body);

    // A second, valid bundle does not take the default away.
    let second = d.bundle_from(
        support::reference_bundle(),
        "second",
        "3.0.0",
        "stagegate:policy@1.0.0",
        true,
    );
    assert_eq!(put(&s, "/v1/bundles/second", None, &second).status, 200);
    let r = decide(&s);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["policy"]["bundle"], NAME);

    // Nor does a restart, which restores both.
    s.kill();
    let s = d.start();
    let r = decide(&s);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["policy"]["bundle"], NAME);
    assert_eq!(s.get("/v1/bundles", None).json()["default"], NAME);
}

fn cache_entries(d: &Deployment) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(d.path("data/cache/components"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect()
}

fn compiled_from_cache(s: &Server) -> serde_json::Value {
    s.get(&format!("/v1/bundles/{NAME}"), None).json()["active"]["compiled_from_cache"].clone()
}

#[test]
fn the_component_cache_is_private_and_entries_others_could_write_are_replaced() {
    let d = Deployment::new(&format!(
        "[[bundles]]\nname = \"{NAME}\"\nfile = \"ref.bundle\"\n"
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    s.kill();
    let dir = std::fs::metadata(d.path("data/cache/components")).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700);
    let entries = cache_entries(&d);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(std::fs::metadata(entry).unwrap().mode() & 0o777, 0o600);

    // A valid entry that the group could have rewritten is not loaded.
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o664)).unwrap();
    let s = d.start();
    assert_eq!(compiled_from_cache(&s), false);
    assert!(
        s.logs().contains("ignoring compiled-component cache entry"),
        "{}",
        s.logs()
    );
    assert_eq!(std::fs::metadata(entry).unwrap().mode() & 0o777, 0o600);
    s.kill();

    // Nor is one owned by another user.
    std::os::unix::fs::chown(entry, Some(4242), None).unwrap();
    let s = d.start();
    assert_eq!(compiled_from_cache(&s), false);
    assert!(s.logs().contains("owned by uid 4242"), "{}", s.logs());
    s.kill();
    assert_ne!(std::fs::metadata(entry).unwrap().uid(), 4242);

    // The replaced entry is used again.
    let s = d.start();
    assert_eq!(compiled_from_cache(&s), true);
}

#[test]
fn cache_false_compiles_at_every_start_and_writes_no_code() {
    let d = Deployment::with(
        "cache = false",
        &format!("[[bundles]]\nname = \"{NAME}\"\nfile = \"ref.bundle\"\n"),
    );
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    s.kill();
    let s = d.start();
    assert_eq!(compiled_from_cache(&s), false);
    assert!(!d.path("data/cache").exists());
}

#[test]
fn serving_beyond_loopback_while_trusting_the_development_key_is_refused() {
    // The embedded configuration: builds and signs with data/keys/dev and
    // trusts data/keys.
    let cwd = tempfile::tempdir().unwrap();
    let o = support::run(
        cwd.path(),
        &["serve", "--listen", "0.0.0.0:0", "--check"],
        None,
    );
    let (_, stderr) = support::text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("data/keys/dev"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");

    // Without --check it never binds.
    let mut child = std::process::Command::new(support::bin())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(cwd.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stagegate serve kept running on 0.0.0.0 with the development key trusted");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("data/keys/dev"), "{stderr}");

    // A copy of the key's public half in another trust directory is the
    // same trust.
    let d = Deployment::with(
        "listen = \"0.0.0.0:8080\"",
        "[[bundles]]\nname = \"dev\"\nbuild = \"policy\"\nsign_with = \"keys/dev\"\n",
    );
    let o = support::run(
        d.dir.path(),
        &["serve", "--config", d.config().to_str().unwrap(), "--check"],
        None,
    );
    let (_, stderr) = support::text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("keys/dev"), "{stderr}");

    // Loopback development stays allowed.
    let o = support::run(
        cwd.path(),
        &["serve", "--listen", "127.0.0.1:0", "--check"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", support::text(&o));
}

//! Replicas sharing one PostgreSQL log: one sequencer appends, the others
//! queue their entries and answer once they are in the log
//! (docs/log.md, "Replicas").

use crate::support;

use support::records::{Backend, World, get, registered_release, token};
use support::server::Server;

/// Gates without receipts: one log entry each.
const NO_RECEIPTS: &str = "\n[receipts]\nenabled = false\n";

/// A world on PostgreSQL with `settings` (TOML lines for its config)
/// and receipts off, and its first replica, once it sequences; `None`
/// (skipped) without PostgreSQL.
fn sequencing(settings: &str) -> Option<(World, Server)> {
    let w = World::new(Backend::Postgres, &format!("{settings}{NO_RECEIPTS}"))?;
    let a = w.start();
    support::wait_until("replica A sequences", support::HANG, || is_sequencer(&a));
    Some((w, a))
}

/// Another replica of `w`: same database, bundle and tokens, its own data
/// directory (and so its own checkpoint key).
fn replica(w: &World, n: usize) -> Server {
    let config = w.d.path(&format!("config{n}.toml"));
    let text = std::fs::read_to_string(w.d.config()).unwrap().replace(
        &format!("data_dir = \"{}\"", w.d.path("data").display()),
        &format!("data_dir = \"{}\"", w.d.path(&format!("data{n}")).display()),
    );
    std::fs::write(&config, text).unwrap();
    Server::start(w.d.dir.path(), Some(&config))
}

/// A metric's value on `s` (0 when absent).
fn metric(s: &Server, name: &str) -> f64 {
    s.get("/metrics", None)
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn is_sequencer(s: &Server) -> bool {
    metric(s, "stagegate_log_sequencer") == 1.0
}

/// A gate decided through `s`; its decision id.
fn gate(s: &Server) -> String {
    let r = s.post_json(
        "/v1/decisions/gate",
        Some(&token("gw")),
        &support::high_risk_gate(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["decision_id"].as_str().unwrap().to_string()
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Checks `GET /v1/decisions/{id}/proof` on `s`: the entry names the
/// decision, its leaf hash is the entry's, and the inclusion proof leads
/// to the root its checkpoint signed. Returns the entry's index.
fn assert_proved(s: &Server, id: &str) -> u64 {
    let r = get(s, "audit", &format!("/v1/decisions/{id}/proof"));
    assert_eq!(r.status, 200, "decision {id}: {}", r.body);
    let p = r.json();
    assert_eq!(p["decoded"]["decision_id"], id);
    let entry = b64(p["entry"].as_str().unwrap());
    let leaf = stagegate::records::merkle::leaf_hash(&entry);
    assert_eq!(b64(p["leaf_hash"].as_str().unwrap()), leaf.to_vec());
    let note = p["checkpoint"].as_str().unwrap();
    let lines: Vec<&str> = note.lines().collect();
    let size: u64 = lines[1].parse().unwrap();
    let root: [u8; 32] = b64(lines[2]).try_into().unwrap();
    assert_eq!(p["inclusion"]["size"].as_u64().unwrap(), size);
    let hashes: Vec<[u8; 32]> = p["inclusion"]["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| b64(h.as_str().unwrap()).try_into().unwrap())
        .collect();
    let index = p["index"].as_u64().unwrap();
    stagegate::records::merkle::verify_inclusion(index, size, &leaf, &hashes, &root)
        .unwrap_or_else(|e| panic!("decision {id}: inclusion proof does not verify: {e:?}"));
    index
}

/// Every decision in `ids` is in the log exactly once, and nothing is
/// left queued.
fn assert_each_once(w: &World, ids: &[String]) {
    let logged = w.query_strings("SELECT decision_id FROM decision_log");
    for id in ids {
        let n = logged.iter().filter(|l| *l == id).count();
        assert_eq!(n, 1, "decision {id} is in the log {n} times");
    }
    assert_eq!(w.query_i64("SELECT COUNT(*) FROM log_queue"), 0);
}

#[test]
fn replicas_on_one_database_build_one_tree_each_answering_once_its_entries_are_in_it() {
    // Leases of 3 s (renewed every 0.75 s): a loaded machine starving a
    // renewal for a moment does not hand the log over mid-test.
    let Some((w, a)) = sequencing("sequencer_lease_ms = 3000\n") else {
        return;
    };
    let replicas = [a, replica(&w, 2), replica(&w, 3)];
    // A record written through a replica that queues its entry: its row
    // and its entry are committed together and audited below.
    registered_release(&replicas[2], "2.3.0");
    // Each replica decides at once; every gate answered by a replica that
    // queues is provable through that replica as soon as it is answered
    // (`ack`: answered once in the log).
    let ids: Vec<Vec<String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = replicas
            .iter()
            .map(|s| {
                scope.spawn(move || {
                    (0..15)
                        .map(|_| {
                            let id = gate(s);
                            assert_proved(s, &id);
                            id
                        })
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let sequencers: Vec<bool> = replicas.iter().map(is_sequencer).collect();
    assert_eq!(sequencers, [true, false, false]);
    let all: Vec<String> = ids.iter().flatten().cloned().collect();
    assert_each_once(&w, &all);
    // One tree: a decision written through each replica is proved by every
    // replica against the same log.
    for s in &replicas {
        for through in &ids {
            assert_proved(s, &through[0]);
        }
    }
    let note = get(&replicas[0], "audit", "/v1/log/checkpoint");
    assert_eq!(note.status, 200, "{}", note.body);
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn every_replica_listens_for_the_queue_notifications_and_a_queued_decision_is_answered() {
    let Some((w, a)) = sequencing("sequencer_lease_ms = 3000\n") else {
        return;
    };
    let b = replica(&w, 2);
    // One listening connection per replica (LISTEN on both channels), in
    // this world's own database (this query's own text matches too).
    let listeners = || {
        w.query_i64(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND query LIKE '%LISTEN \"stagegate_log_queued\";LISTEN \"stagegate_log_appended\";%'",
        )
    };
    support::wait_until("both replicas listen", support::HANG, || listeners() == 2);
    // Decisions through the replica that queues are answered once in the
    // log (the sequencer woken by `stagegate_log_queued`, the waiter by
    // `stagegate_log_appended`), one after another.
    let ids: Vec<String> = (0..10)
        .map(|_| {
            let id = gate(&b);
            assert_proved(&b, &id);
            id
        })
        .collect();
    assert!(is_sequencer(&a) && !is_sequencer(&b));
    assert_each_once(&w, &ids);
}

#[test]
fn a_replica_takes_over_a_dead_sequencer_and_appends_what_was_queued_meanwhile() {
    let Some((w, a)) = sequencing("sequencer_lease_ms = 3000\n") else {
        return;
    };
    let b = replica(&w, 2);
    let before = gate(&b);
    assert!(!is_sequencer(&b));
    a.kill();
    // Decided through B while no replica holds a live lease: queued, and
    // answered once B has taken the lease and appended them.
    let queued: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| (0..5).map(|_| gate(&b)).collect::<Vec<_>>()))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert!(is_sequencer(&b), "B answered without holding the lease");
    let mut all = queued.clone();
    all.push(before);
    assert_each_once(&w, &all);
    for id in &queued {
        assert_proved(&b, id);
    }
    assert_eq!(get(&b, "audit", "/v1/log/checkpoint").status, 200);
    let (code, out) = w.audit_verify_with(&[
        "--checkpoint",
        w.d.path("data2/log/last-checkpoint").to_str().unwrap(),
        "--key",
        w.d.path("data2/log/checkpoint.pub").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_sequencer_whose_lease_was_taken_cannot_append_and_queues_instead() {
    // A long lease: after A took it, A believes it holds it for most of a
    // minute whatever the database says, which is what fencing is for.
    let Some((w, a)) = sequencing("sequencer_lease_ms = 60000\ndurability = \"queued\"\n") else {
        return;
    };
    // `queued` answers before the commit: wait until it is in the log.
    let first = gate(&a);
    support::wait_until("the first gate is appended", support::HANG, || {
        w.query_i64(&format!(
            "SELECT COUNT(*) FROM decision_log WHERE decision_id = '{first}'"
        )) == 1
    });
    let size = w.query_i64("SELECT seq FROM chain_head WHERE id = 1");
    // Another holder takes the lease behind A's back.
    assert_eq!(
        w.sql("UPDATE log_sequencer SET holder = 'intruder', epoch = epoch + 1, expires_at = expires_at + 3600000 WHERE id = 1"),
        1
    );
    assert!(
        is_sequencer(&a),
        "A should still believe it holds the lease"
    );
    let fenced = gate(&a);
    // Answered (queued), yet A appended nothing: its append checked the
    // lease and queued the entry for the holder.
    assert_eq!(w.query_i64("SELECT seq FROM chain_head WHERE id = 1"), size);
    assert_eq!(w.query_i64("SELECT COUNT(*) FROM log_queue"), 1);
    // Records written meanwhile are queued with their entries; an audit
    // checks each row against its queued entry until it is appended.
    registered_release(&a, "2.3.0");
    let queued = w.query_i64("SELECT COUNT(*) FROM log_queue");
    assert!(queued > 1, "{queued}");
    assert_eq!(get(&a, "audit", "/v1/log/checkpoint").status, 200);
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.query_i64("SELECT seq FROM chain_head WHERE id = 1"), size);
    // A notices at its next renewal, and counts the lost lease.
    support::wait_until("A notices it lost the lease", support::HANG, || {
        !is_sequencer(&a)
    });
    assert_eq!(metric(&a, "stagegate_log_sequencer_leases_lost_total"), 1.0);
    assert_eq!(w.query_i64("SELECT seq FROM chain_head WHERE id = 1"), size);
    // The intruder's lease lapses; A takes the lease again and appends
    // what it queued.
    w.sql("UPDATE log_sequencer SET expires_at = 0 WHERE id = 1");
    support::wait_until("the queued entries are appended", support::HANG, || {
        w.query_i64("SELECT COUNT(*) FROM log_queue") == 0
    });
    assert!(is_sequencer(&a));
    assert_proved(&a, &fenced);
    assert_eq!(
        w.query_i64("SELECT seq FROM chain_head WHERE id = 1"),
        size + queued
    );
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_sequencer_stopped_gracefully_hands_the_lease_over_at_once() {
    // A lease longer than any wait here: B can only sequence this soon if
    // A gave the lease up when it stopped.
    let Some((w, a)) = sequencing("sequencer_lease_ms = 600000\n") else {
        return;
    };
    let b = replica(&w, 2);
    let before = gate(&b);
    assert_eq!(a.terminate(), Some(0));
    support::wait_until("B sequences", support::HANG, || is_sequencer(&b));
    let after = gate(&b);
    assert_each_once(&w, &[before, after.clone()]);
    assert_proved(&b, &after);
}

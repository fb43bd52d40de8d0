//! `stagegate log cosign|witness-key`: running a witness of a stagegate
//! decision log with the CLI alone (docs/log.md, "Running a witness").

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};

use super::{CliError, CliResult, Exit};
use crate::records::checkpoint::Checkpoint;
use crate::records::{merkle, witness};

#[derive(Debug, Args)]
pub(super) struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Cosign a checkpoint (C2SP tlog-cosignature/v1) after checking the
    /// log's signature and, with --previous and --proof, that it extends
    /// the last checkpoint this witness cosigned; prints the cosigned note
    Cosign {
        /// The checkpoint (GET /v1/log/checkpoint)
        checkpoint: PathBuf,
        /// The witness's secret key (`stagegate keygen`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The witness's name in its cosignatures (e.g. example.org/witness)
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The log's verifier key (`verifier_key` of GET /v1/log/key), file or inline
        #[arg(long, value_name = "FILE|VKEY")]
        log_key: String,
        /// The last checkpoint this witness cosigned
        #[arg(long, value_name = "FILE", requires = "proof")]
        previous: Option<PathBuf>,
        /// The consistency proof from it to this one
        /// (GET /v1/log/proof/consistency?from=OLD&to=NEW)
        #[arg(long, value_name = "FILE", requires = "previous")]
        proof: Option<PathBuf>,
    },
    /// Print the witness's cosignature/v1 verifier key (what auditors pass
    /// to `audit verify --witness`)
    WitnessKey {
        /// The witness's secret key
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The witness's name
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))
}

/// A log verifier key, from a file or inline.
fn log_key(arg: &str) -> Result<witness::NoteKey, CliError> {
    let text = if Path::new(arg).is_file() {
        read(Path::new(arg))?
    } else {
        arg.to_string()
    };
    let k = witness::parse_verifier_key(&text)
        .map_err(|e| CliError::bad_input(format!("--log-key: {e}")))?;
    if k.kind != witness::ED25519 {
        return Err(CliError::bad_input("--log-key: not a log key (type 0x01)"));
    }
    Ok(k)
}

fn hash32(hex_text: &str) -> Result<merkle::Hash, CliError> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CliError::bad_input("a checkpoint's root is not 32 bytes"))
}

pub(super) fn run(args: LogArgs) -> CliResult {
    match args.command {
        LogCommand::WitnessKey { key, name } => {
            let key = crate::bundle::keys::load_secret(&key)?;
            println!(
                "{}",
                witness::verifier_key(&name, witness::COSIGNATURE_V1, &key.verifying_key())
            );
            Ok(Exit::Success)
        }
        LogCommand::Cosign {
            checkpoint,
            key,
            name,
            log_key: lk,
            previous,
            proof,
        } => {
            let lk = log_key(&lk)?;
            let note = read(&checkpoint)?;
            let refuse = |why: String| CliError::failure(format!("NOT COSIGNED: {why}"));
            let cp = Checkpoint::open(&note, &lk.key)
                .map_err(|e| refuse(format!("{}: {e}", checkpoint.display())))?;
            if cp.origin != lk.name {
                return Err(refuse(format!(
                    "the checkpoint's origin '{}' is not the log key's name '{}'",
                    cp.origin, lk.name
                )));
            }
            if let (Some(prev), Some(proof)) = (previous, proof) {
                let old = Checkpoint::open(&read(&prev)?, &lk.key)
                    .map_err(|e| refuse(format!("{}: {e}", prev.display())))?;
                let doc: serde_json::Value = serde_json::from_str(&read(&proof)?)
                    .map_err(|e| CliError::bad_input(format!("{}: {e}", proof.display())))?;
                let hashes: Vec<merkle::Hash> = doc["hashes"]
                    .as_array()
                    .ok_or_else(|| {
                        CliError::bad_input(format!(
                            "{}: /hashes: expected an array",
                            proof.display()
                        ))
                    })?
                    .iter()
                    .map(|h| {
                        h.as_str()
                            .and_then(|s| B64.decode(s).ok())
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| {
                                CliError::bad_input(format!(
                                    "{}: /hashes: expected base64 of 32 bytes",
                                    proof.display()
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?;
                let (from, to) = (old.seq.max(0) as u64, cp.seq.max(0) as u64);
                merkle::verify_consistency(from, to, &hash32(&old.hash)?, &hash32(&cp.hash)?, &hashes)
                    .map_err(|e| {
                        refuse(format!(
                            "the checkpoint of {to} entries does not extend the previous one of {from}: {e}"
                        ))
                    })?;
            }
            let key = crate::bundle::keys::load_secret(&key)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let cosigned = witness::cosign(&note, &name, &key, now)
                .map_err(|e| CliError::bad_input(e.to_string()))?;
            print!("{cosigned}");
            Ok(Exit::Success)
        }
    }
}

/// Checks a decision's log proof (`GET /v1/decisions/{id}/proof`, or the
/// `log` member of a receipt fetched with `?include=proof`) offline: the
/// checkpoint's signature by the log key, that the proof's entry names
/// `decision_id`, and that the entry is included under the checkpoint's
/// root. Returns a line saying what was proven.
pub(super) fn verify_decision_proof(
    doc: &serde_json::Value,
    log_key_arg: &str,
    decision_id: Option<&str>,
) -> Result<String, CliError> {
    let bad = |path: &str, what: &str| {
        CliError::failure(format!("log proof NOT VERIFIED: {path}: {what}"))
    };
    let lk = log_key(log_key_arg)?;
    let note = doc["checkpoint"]
        .as_str()
        .ok_or_else(|| bad("/checkpoint", "expected the signed checkpoint text"))?;
    let cp = Checkpoint::open(note, &lk.key)
        .map_err(|e| CliError::failure(format!("log proof NOT VERIFIED: /checkpoint: {e}")))?;
    let entry = doc["entry"]
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .ok_or_else(|| bad("/entry", "expected base64 entry bytes"))?;
    let decoded: serde_json::Value = serde_json::from_slice(&entry)
        .map_err(|_| bad("/entry", "the entry bytes are not JSON"))?;
    let named = decoded["entry"]["decision_id"].as_str().unwrap_or_default();
    if let Some(id) = decision_id
        && named != id
    {
        return Err(bad(
            "/entry",
            &format!("the entry names decision '{named}', not the receipt's '{id}'"),
        ));
    }
    let index = doc["index"]
        .as_u64()
        .ok_or_else(|| bad("/index", "expected an integer"))?;
    let size = doc["inclusion"]["size"]
        .as_u64()
        .ok_or_else(|| bad("/inclusion/size", "expected an integer"))?;
    if size != cp.seq.max(0) as u64 {
        return Err(bad(
            "/inclusion/size",
            &format!(
                "the proof is for a tree of {size}, the checkpoint signs {}",
                cp.seq
            ),
        ));
    }
    let hashes: Vec<merkle::Hash> = doc["inclusion"]["hashes"]
        .as_array()
        .ok_or_else(|| bad("/inclusion/hashes", "expected an array"))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| B64.decode(s).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("/inclusion/hashes", "expected base64 of 32 bytes"))
        })
        .collect::<Result<_, _>>()?;
    let root = hash32(&cp.hash)?;
    merkle::verify_inclusion(index, size, &merkle::leaf_hash(&entry), &hashes, &root)
        .map_err(|e| bad("/inclusion", &e.to_string()))?;
    Ok(format!(
        "log proof verified: decision {named} is entry {index} of the log of {size} entries signed at {} ({})",
        cp.at, cp.origin
    ))
}

//! `stagegate receipt verify FILE --trust DIR [--subject sha256:…]`: checks
//! a decision receipt offline, with nothing but the receipt keys' public
//! halves (docs/evidence-and-receipts.md), and with `--proof --log-key` that
//! the decision is in the log under a signed checkpoint (docs/log.md).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::output::{Item, Level, Output, Results};
use super::{CliError, CliResult, Exit};
use crate::attest::{Envelope, PublicKey};

#[derive(Debug, Args)]
pub(super) struct ReceiptArgs {
    #[command(subcommand)]
    command: ReceiptCommand,
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Verify a receipt (a DSSE envelope from GET /v1/decisions/{id}/receipt):
    /// exit 0 when it verifies, 1 with the reason when it does not
    Verify {
        /// The receipt's JSON file
        file: PathBuf,
        /// Directory of trusted receipt public keys (*.pub or *.pem, SPKI
        /// PEM; GET /v1/receipts/keys lists them)
        #[arg(long, value_name = "DIR")]
        trust: PathBuf,
        /// The artifact the receipt must be about
        #[arg(long, value_name = "sha256:HEX")]
        subject: Option<String>,
        /// The decision's log proof (GET /v1/decisions/{id}/proof): also
        /// check that the decision is in the log under a signed
        /// checkpoint. A receipt fetched with `?include=proof` carries it
        #[arg(long, value_name = "FILE", requires = "log_key")]
        proof: Option<PathBuf>,
        /// The log's key (`verifier_key` of GET /v1/log/key, file or
        /// inline) the proof's checkpoint must be signed by
        #[arg(long, value_name = "FILE|VKEY")]
        log_key: Option<String>,
        /// How to report: text, json, junit, github or sarif (on standard output)
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

pub(super) fn run(args: ReceiptArgs) -> CliResult {
    match args.command {
        ReceiptCommand::Verify {
            file,
            trust,
            subject,
            proof,
            log_key,
            output,
        } => verify(
            &file,
            &trust,
            subject.as_deref(),
            proof.as_deref(),
            log_key.as_deref(),
            output,
        ),
    }
}

/// Every `*.pub` and `*.pem` public key in `dir`, by default key id.
fn load_keys(dir: &Path) -> Result<Vec<(String, PublicKey)>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub" || x == "pem") && p.is_file())
        .collect();
    files.sort();
    let mut keys = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))?;
        let (key, keyid) = PublicKey::from_pem(&text, &path.display().to_string())
            .map_err(|e| CliError::bad_input(e.to_string()))?;
        keys.push((keyid, key));
    }
    if keys.is_empty() {
        return Err(CliError::bad_input(format!(
            "{}: holds no public keys (*.pub, *.pem)",
            dir.display()
        )));
    }
    Ok(keys)
}

fn verify(
    file: &Path,
    trust: &Path,
    subject: Option<&str>,
    proof: Option<&Path>,
    log_key: Option<&str>,
    output: Output,
) -> CliResult {
    let keys = load_keys(trust)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    // A receipt fetched with `?include=proof`: the envelope and its proof.
    let combined: Option<serde_json::Value> = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .filter(|v| v.get("dsse_envelope").is_some());
    let text = match &combined {
        Some(v) => v["dsse_envelope"].to_string(),
        None => text,
    };
    let proof_doc = match proof {
        Some(p) => Some(
            serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(p)
                    .map_err(|e| CliError::bad_input(format!("{}: {e}", p.display())))?,
            )
            .map_err(|e| CliError::bad_input(format!("{}: {e}", p.display())))?,
        ),
        None => combined
            .as_ref()
            .map(|v| v["log"].clone())
            .filter(|_| log_key.is_some()),
    };
    if log_key.is_some() && proof_doc.is_none() {
        return Err(CliError::bad_input(
            "--log-key needs --proof FILE, or a receipt fetched with ?include=proof",
        ));
    }
    let name = file.display().to_string();
    let verified =
        Envelope::parse(&text).and_then(|env| crate::attest::receipt::verify(&env, &keys, subject));
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            let message = format!("receipt NOT VERIFIED: {name}: {e}");
            if output != Output::Text {
                Results {
                    command: "receipt verify",
                    subject: name.clone(),
                    passed: false,
                    items: vec![Item {
                        id: "receipt.verify".into(),
                        level: Level::Error,
                        message: e.to_string(),
                        file: Some(name),
                        path: None,
                        controls: Vec::new(),
                    }],
                    details: serde_json::json!({"decision_id": null, "keyid": null, "subjects": []}),
                }
                .print(output, Exit::Failure as u8, &[("passed", "false")])
                .map_err(|e| CliError::failure(e.to_string()))?;
            }
            return Err(CliError::failure(message));
        }
    };
    let subjects: Vec<String> = v
        .statement
        .subject
        .iter()
        .filter_map(|s| {
            s.digest
                .get("sha256")
                .map(|d| format!("{} sha256:{d}", s.name))
        })
        .collect();
    let decision = v.decision_id.as_deref().unwrap_or("(unnamed)");
    // The log proof, when asked for: the decision's entry is included in a
    // checkpoint signed by the log's key.
    let in_log = match (proof_doc, log_key) {
        (Some(doc), Some(key)) => {
            if v.decision_id.is_none() {
                return Err(CliError::failure(
                    "log proof NOT VERIFIED: the receipt names no decision to look for in the log",
                ));
            }
            Some(super::log::verify_decision_proof(
                &doc,
                key,
                v.decision_id.as_deref(),
            )?)
        }
        _ => None,
    };
    if output == Output::Text {
        println!(
            "receipt verified: decision {decision} signed by key {} for {}",
            v.keyid,
            subjects.join(", ")
        );
        if let Some(uri) = &v.resource_uri {
            println!("artifact: {uri}");
        }
        if let Some(line) = &in_log {
            println!("{line}");
        }
        return Ok(Exit::Success);
    }
    let mut items = vec![Item {
        id: "receipt.verify".into(),
        level: Level::Pass,
        message: format!("decision {decision} signed by key {}", v.keyid),
        file: Some(name.clone()),
        path: None,
        controls: Vec::new(),
    }];
    if let Some(line) = in_log {
        items.push(Item {
            id: "receipt.log_inclusion".into(),
            level: Level::Pass,
            message: line,
            file: Some(name.clone()),
            path: None,
            controls: Vec::new(),
        });
    }
    Results {
        command: "receipt verify",
        subject: name,
        passed: true,
        items,
        details: serde_json::json!({
            "decision_id": v.decision_id,
            "keyid": v.keyid,
            "subjects": subjects,
            "resource_uri": v.resource_uri,
        }),
    }
    .print(output, Exit::Success as u8, &[("passed", "true")])
    .map_err(|e| CliError::failure(e.to_string()))?;
    Ok(Exit::Success)
}

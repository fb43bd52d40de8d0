//! `stagegate receipt verify FILE --trust DIR [--subject sha256:…]`: checks
//! a decision receipt offline, with nothing but the receipt keys' public
//! halves (docs/evidence-and-receipts.md).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::output::{Item, Level, Output, Results};
use super::{CliError, CliResult, Exit};
use crate::attest::{Envelope, PublicKey};

#[derive(Debug, Args)]
pub struct ReceiptArgs {
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
        /// How to report: text, json, junit, github or sarif (on standard output)
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

pub fn run(args: ReceiptArgs) -> CliResult {
    match args.command {
        ReceiptCommand::Verify {
            file,
            trust,
            subject,
            output,
        } => verify(&file, &trust, subject.as_deref(), output),
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

fn verify(file: &Path, trust: &Path, subject: Option<&str>, output: Output) -> CliResult {
    let keys = load_keys(trust)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
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
                .map_err(CliError::failure)?;
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
    if output == Output::Text {
        println!(
            "receipt verified: decision {decision} signed by key {} for {}",
            v.keyid,
            subjects.join(", ")
        );
        return Ok(Exit::Success);
    }
    Results {
        command: "receipt verify",
        subject: name.clone(),
        passed: true,
        items: vec![Item {
            id: "receipt.verify".into(),
            level: Level::Pass,
            message: format!("decision {decision} signed by key {}", v.keyid),
            file: Some(name),
            path: None,
            controls: Vec::new(),
        }],
        details: serde_json::json!({
            "decision_id": v.decision_id,
            "keyid": v.keyid,
            "subjects": subjects,
        }),
    }
    .print(output, Exit::Success as u8, &[("passed", "true")])
    .map_err(CliError::failure)?;
    Ok(Exit::Success)
}

//! `stagegate receipt verify FILE --trust DIR [--subject sha256:…]`: checks
//! a decision receipt offline, with nothing but the receipt keys' public
//! halves (docs/evidence-and-receipts.md).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

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
    },
}

pub fn run(args: ReceiptArgs) -> CliResult {
    match args.command {
        ReceiptCommand::Verify {
            file,
            trust,
            subject,
        } => verify(&file, &trust, subject.as_deref()),
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

fn verify(file: &Path, trust: &Path, subject: Option<&str>) -> CliResult {
    let keys = load_keys(trust)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    let fail = |e: crate::attest::AttestError| {
        CliError::failure(format!("receipt NOT VERIFIED: {}: {e}", file.display()))
    };
    let env = Envelope::parse(&text).map_err(fail)?;
    let v = crate::attest::receipt::verify(&env, &keys, subject).map_err(fail)?;
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
    println!(
        "receipt verified: decision {} signed by key {} for {}",
        v.decision_id.as_deref().unwrap_or("(unnamed)"),
        v.keyid,
        subjects.join(", ")
    );
    Ok(Exit::Success)
}

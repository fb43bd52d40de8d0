//! `stagegate attest`: signs an in-toto Statement about an artifact as a
//! DSSE envelope, with a `stagegate keygen` key, so a release pipeline
//! without in-toto tooling can attest its evidence (docs/evidence-and-receipts.md). The envelope is what `POST /v1/systems/{id}/releases` takes
//! in `attestations`; `--public-key` prints the SPKI PEM an
//! `[[evidence.keys]]` entry trusts.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::{CliError, CliResult, Exit};
use crate::attest::Statement;
use crate::attest::receipt::ReceiptSigner;

#[derive(Debug, Args)]
pub(super) struct AttestArgs {
    /// The signing key (`stagegate keygen`)
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Print the key's public half as SPKI PEM (for `[[evidence.keys]]`)
    /// instead of signing
    #[arg(long, conflicts_with_all = ["subject", "predicate_type", "predicate"])]
    public_key: bool,
    /// The artifact the statement is about
    #[arg(
        long,
        value_name = "sha256:HEX",
        required_unless_present = "public_key"
    )]
    subject: Option<String>,
    /// The subject's name in the statement
    #[arg(long, value_name = "NAME", default_value = "artifact")]
    subject_name: String,
    /// The predicate type (a URI, e.g. https://in-toto.io/attestation/test-result/v0.1)
    #[arg(long, value_name = "URI", required_unless_present = "public_key")]
    predicate_type: Option<String>,
    /// The predicate: a JSON object; `-` reads standard input
    #[arg(long, value_name = "FILE|-", required_unless_present = "public_key")]
    predicate: Option<PathBuf>,
}

pub(super) fn run(args: AttestArgs) -> CliResult {
    let key = crate::bundle::keys::load_secret(&args.key)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", args.key.display())))?;
    let signer = ReceiptSigner::new(key, "stagegate attest");
    let public = signer.public();
    if args.public_key {
        print!("{}", public.public_key_pem);
        return Ok(Exit::Success);
    }
    let (Some(subject), Some(predicate_type), Some(predicate)) =
        (args.subject, args.predicate_type, args.predicate)
    else {
        return Err(CliError::bad_input(
            "give --subject, --predicate-type and --predicate (or --public-key)",
        ));
    };
    let hex = crate::attest::sha256_hex(&subject).ok_or_else(|| {
        CliError::bad_input(format!(
            "--subject: '{subject}' is not sha256:<64 hex digits>"
        ))
    })?;
    let text = if predicate.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::bad_input(format!("reading standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(&predicate)
            .map_err(|e| CliError::bad_input(format!("{}: {e}", predicate.display())))?
    };
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::bad_input(format!("{}: not JSON: {e}", predicate.display())))?;
    if !body.is_object() {
        return Err(CliError::bad_input(format!(
            "{}: the predicate must be a JSON object",
            predicate.display()
        )));
    }
    let envelope = Statement::about_sha256(&args.subject_name, &hex, &predicate_type, body)
        .sign_ed25519(&public.keyid, &signer.key);
    let out = serde_json::to_string(&envelope)
        .map_err(|e| CliError::failure(format!("encoding the envelope: {e}")))?;
    println!("{out}");
    Ok(Exit::Success)
}

//! `stagegate verify FILE --trust DIR [--min-signatures K]`

use std::path::PathBuf;

use clap::Args;

use super::output::{Item, Level, Output, Results};
use super::{CliError, CliResult, Exit};
use crate::bundle::{ArchiveLimits, Bundle, TrustStore};

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// Bundle file
    file: PathBuf,
    /// Directory of trusted public keys (*.pub)
    #[arg(long, value_name = "DIR")]
    trust: PathBuf,
    /// Valid signatures by distinct trusted keys required (k of n)
    #[arg(long, value_name = "K", default_value_t = 1)]
    min_signatures: usize,
    /// How to report: text, json, junit, github or sarif (on standard output)
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

pub(super) fn run(args: VerifyArgs) -> CliResult {
    let file = args.file.display().to_string();
    let verified = Bundle::read(&args.file, &ArchiveLimits::default())
        .map_err(CliError::from)
        .and_then(|bundle| {
            let trust = TrustStore::load(&args.trust)?;
            let signers = bundle.verify(&trust, args.min_signatures)?;
            Ok((bundle, signers))
        });
    let (bundle, signers) = match verified {
        Ok(v) => v,
        // A refusal in a machine-readable mode is a report, not only a
        // message on standard error.
        Err(e) if args.output != Output::Text && e.exit == Exit::Failure => {
            let results = Results {
                command: "verify",
                subject: file.clone(),
                passed: false,
                items: vec![Item {
                    id: "bundle.verify".into(),
                    level: Level::Error,
                    message: e.message.clone(),
                    file: Some(file),
                    path: None,
                    controls: Vec::new(),
                }],
                details: serde_json::json!({"bundle": null, "signers": []}),
            };
            results
                .print(args.output, Exit::Failure as u8, &[("passed", "false")])
                .map_err(|e| CliError::failure(e.to_string()))?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let names: Vec<String> = signers
        .iter()
        .map(|s| format!("{} ({})", s.name, s.key_id))
        .collect();
    if args.output == Output::Text {
        println!(
            "verified {} {}: {} file(s) match the manifest, signed by {} of {} required: {}\ndigest {}",
            bundle.manifest.name,
            bundle.manifest.version,
            bundle.manifest.files.len(),
            signers.len(),
            args.min_signatures.max(1),
            names.join(", "),
            bundle.digest()
        );
        return Ok(Exit::Success);
    }
    let digest = bundle.digest().to_string();
    let results = Results {
        command: "verify",
        subject: format!("{} {}", bundle.manifest.name, bundle.manifest.version),
        passed: true,
        items: signers
            .iter()
            .map(|s| Item {
                id: format!("signature {}", s.key_id),
                level: Level::Pass,
                message: format!("signed by {} ({})", s.name, s.key_id),
                file: Some(file.clone()),
                path: None,
                controls: Vec::new(),
            })
            .collect(),
        details: serde_json::json!({
            "bundle": {"name": bundle.manifest.name, "version": bundle.manifest.version, "digest": digest,
                "files": bundle.manifest.files.len()},
            "signers": signers.iter().map(|s| serde_json::json!({"name": s.name, "key_id": s.key_id})).collect::<Vec<_>>(),
            "min_signatures": args.min_signatures.max(1),
        }),
    };
    results
        .print(
            args.output,
            Exit::Success as u8,
            &[("passed", "true"), ("digest", &digest)],
        )
        .map_err(|e| CliError::failure(e.to_string()))?;
    Ok(Exit::Success)
}

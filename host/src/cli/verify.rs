//! `stagegate verify FILE --trust DIR [--min-signatures K]`

use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit};
use crate::bundle::{ArchiveLimits, Bundle, TrustStore};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Bundle file
    file: PathBuf,
    /// Directory of trusted public keys (*.pub)
    #[arg(long, value_name = "DIR")]
    trust: PathBuf,
    /// Valid signatures by distinct trusted keys required (k of n)
    #[arg(long, value_name = "K", default_value_t = 1)]
    min_signatures: usize,
}

pub fn run(args: VerifyArgs) -> CliResult {
    let bundle = Bundle::read(&args.file, &ArchiveLimits::default())?;
    let trust = TrustStore::load(&args.trust)?;
    let signers = bundle.verify(&trust, args.min_signatures)?;
    let names: Vec<String> = signers
        .iter()
        .map(|s| format!("{} ({})", s.name, s.key_id))
        .collect();
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
    Ok(Exit::Success)
}

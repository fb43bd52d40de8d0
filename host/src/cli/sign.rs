//! `stagegate sign FILE --key KEY [--key KEY…]`

use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit};
use crate::bundle::{ArchiveLimits, Bundle, keys};

#[derive(Debug, Args)]
pub(super) struct SignArgs {
    /// Bundle file to sign in place
    file: PathBuf,
    /// Secret key (repeat for several signers)
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<PathBuf>,
}

pub(super) fn run(args: SignArgs) -> CliResult {
    let mut bundle = Bundle::read(&args.file, &ArchiveLimits::default())?;
    let mut ids = Vec::new();
    for path in &args.key {
        let key = keys::load_secret(path)?;
        ids.push(bundle.sign(&key));
    }
    bundle.write(&args.file)?;
    println!(
        "signed {} {} with key id(s) {}; {} signature(s) in total",
        bundle.manifest.name,
        bundle.manifest.version,
        ids.join(", "),
        bundle.signatures.signatures.len()
    );
    Ok(Exit::Success)
}

//! `stagegate keygen --out KEY`

use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit};
use crate::bundle::keys;

#[derive(Debug, Args)]
pub(super) struct KeygenArgs {
    /// Path of the secret key; the public key is written beside it as KEY.pub
    #[arg(long, value_name = "KEY")]
    out: PathBuf,
}

pub(super) fn run(args: KeygenArgs) -> CliResult {
    let (key, public) = keys::generate(&args.out)?;
    println!(
        "wrote {} (secret, mode 0600) and {} (key id {})",
        args.out.display(),
        public.display(),
        keys::key_id(&key.verifying_key())
    );
    Ok(Exit::Success)
}

//! `stagegate build DIR --out FILE`

use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit};
use crate::bundle::source::PolicySource;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Policy directory (holds bundle.toml)
    dir: PathBuf,
    /// Bundle file to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: BuildArgs) -> CliResult {
    let source = PolicySource::open(&args.dir)?;
    let bundle = source.bundle()?;
    bundle.write(&args.out)?;
    println!(
        "built {} {} ({} bytes of component) -> {}\ndigest {}\nunsigned: sign it with `stagegate sign {} --key KEY`",
        bundle.manifest.name,
        bundle.manifest.version,
        bundle.wasm().len(),
        args.out.display(),
        bundle.digest(),
        args.out.display()
    );
    Ok(Exit::Success)
}

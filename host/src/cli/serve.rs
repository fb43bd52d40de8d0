//! `stagegate serve [--config FILE]`

use std::path::PathBuf;

use clap::Args;

use super::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration; embedded defaults without it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(_args: ServeArgs) -> CliResult {
    Err(CliError::failure("the HTTP service is not implemented yet"))
}

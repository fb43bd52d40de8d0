//! `stagegate serve [--config FILE]`

use std::path::PathBuf;

use clap::Args;

use super::{CliError, CliResult, Exit};
use crate::config::Config;
use crate::server;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// TOML configuration; embedded defaults without it (docs/configuration.md)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this address instead of the configured one
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Check the configuration and exit
    #[arg(long)]
    check: bool,
}

pub(super) fn run(args: ServeArgs) -> CliResult {
    // Configuration errors end the process before anything is bound.
    let mut config = match &args.config {
        Some(path) => Config::load(path)
            .map_err(|e| CliError::bad_input(format!("invalid configuration: {e}")))?,
        None => Config::embedded(),
    };
    if let Some(addr) = args.listen {
        config.listen = addr;
    }
    config
        .check_development_keys()
        .map_err(|e| CliError::bad_input(format!("refusing to start: {e}")))?;
    crate::bundle::key_hygiene::check(&crate::bundle::key_hygiene::Trusted {
        listen: std::iter::once(config.listen)
            .chain(config.listen_tls)
            .collect(),
        trust_dir: &config.trust.dir,
        evidence_keys: config
            .evidence
            .keys
            .iter()
            .map(|k| k.file.clone())
            .collect(),
        data_dir: &config.data_dir,
    })
    .map_err(|e| CliError::bad_input(format!("refusing to start: {e}")))?;
    config
        .check_sources()
        .map_err(|e| CliError::bad_input(format!("invalid configuration: {e}")))?;
    // The HTTPS listener's certificate and key are checked before anything
    // is bound (and by --check).
    if let (Some(_), Some(files)) = (config.listen_tls, config.tls.files()) {
        files
            .load()
            .map_err(|e| CliError::bad_input(format!("invalid configuration: {e}")))?;
    }
    if args.check {
        println!("configuration is valid");
        return Ok(Exit::Success);
    }
    server::init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stagegate-http")
        .build()
        .map_err(|e| CliError::failure(format!("starting the async runtime: {e}")))?;
    runtime
        .block_on(server::serve(config))
        .map_err(|e| CliError::failure(e.to_string()))?;
    Ok(Exit::Success)
}
